import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { S3Store } from '../../packages/core/src/stores/s3/store.js';
import { handoverProperty } from '../../packages/server/test/handover-property.js';
import { type LiveFixture, startLiveFixture } from '../../packages/server/test/live-fixture.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';

// The same hand-over property as packages/server/test/live-handover.test.ts, with S3 (s3rver)
// as the archive: the live stream hands over to chunk objects and then the final object.
describe('live → archive hand-over with an S3 archive', () => {
  let s3: S3rverFixture;
  let fx: LiveFixture | undefined;

  beforeAll(async () => {
    s3 = await startS3rver('handover');
  });
  afterEach(async () => {
    await fx?.close();
    fx = undefined;
  });
  afterAll(async () => {
    await s3?.close();
  });

  for (const seed of [4, 5]) {
    it(`every follower receives exactly the final log from its offset (seed ${seed})`, async () => {
      const store = S3Store.fromUrl(`s3://${s3.bucket}/seed-${seed}`, {
        s3: { endpoint: s3.endpoint, force_path_style: true },
      });
      fx = await startLiveFixture({ store });
      await handoverProperty(fx, seed);
    });
  }
});
