import type { LogStore } from '../../packages/core/src/store.js';
import type { GcsStoreOptions } from '../../packages/core/src/stores/gcs/store.js';
import type { S3StoreOptions } from '../../packages/core/src/stores/s3/store.js';

/** A store described in JSON, so a test and the child processes it starts open the same one. */
export type StoreSpec =
  | { kind: 'local'; root: string }
  | { kind: 's3'; options: S3StoreOptions }
  | { kind: 'gcs'; options: GcsStoreOptions };

export async function openJobStore(spec: StoreSpec): Promise<LogStore> {
  switch (spec.kind) {
    case 'local': {
      const { LocalStore } = await import('../../packages/core/src/stores/local/store.js');
      return new LocalStore({ root: spec.root });
    }
    case 's3': {
      const { S3Store } = await import('../../packages/core/src/stores/s3/store.js');
      return new S3Store(spec.options);
    }
    case 'gcs': {
      const { GcsStore } = await import('../../packages/core/src/stores/gcs/store.js');
      return new GcsStore(spec.options);
    }
  }
}
