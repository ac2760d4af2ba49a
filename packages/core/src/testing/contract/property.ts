import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import type { LogStore } from '../../store.js';
import { readAll } from '../read-all.js';
import { appendInPieces, type ContractSuite, key, sha256 } from './fixture.js';

/** A fast-check property over content, flush points and read offsets. */
export function describeProperty(suite: ContractSuite): void {
  describe('property', () => {
    let store: LogStore;
    beforeEach(() => {
      store = suite.store;
    });

    let run = 0;
    it('returns the written bytes for any content, flush points and read offset', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ maxLength: 2048 }),
          fc.array(fc.nat(), { maxLength: 8 }),
          fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
          async (bytes, cuts, rawOffsets) => {
            const content = Buffer.from(bytes);
            const k = key({ taskId: `prop_${run++}` });
            const writer = await store.openWriter(k);
            await appendInPieces(writer, content, cuts);
            if (suite.capabilities.liveAppend) {
              for (const raw of rawOffsets) {
                const offset = raw % (content.length + 1);
                expect((await readAll(store, k, { offset })).equals(content.subarray(offset))).toBe(
                  true,
                );
              }
            }
            await writer.finish({ size: content.length, sha256: sha256(content) });
            for (const raw of rawOffsets) {
              const offset = raw % (content.length + 1);
              expect((await readAll(store, k, { offset })).equals(content.subarray(offset))).toBe(
                true,
              );
            }
          },
        ),
        { numRuns: 40 },
      );
    });
  });
}
