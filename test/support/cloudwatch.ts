import {
  CloudWatchStore,
  type CloudWatchStoreOptions,
} from '../../packages/core/src/stores/cloudwatch/store.js';

/** The `cloudwatch://` URL of log group `group` in the account and region the emulator serves. */
export function cloudWatchUrl(group: string): string {
  return `cloudwatch://arn:aws:logs:us-east-1:000000000000:log-group:${group}`;
}

/**
 * A CloudWatchStore on log group `group` of the emulator at `emulator.url`: `maxAttempts` tries
 * a request (the SDK's default without it), `overrides` over the store's other defaults.
 */
export function cloudWatchStoreOn(
  emulator: { url: string },
  group: string,
  maxAttempts?: number,
  overrides: Partial<CloudWatchStoreOptions> = {},
): CloudWatchStore {
  const settings = maxAttempts === undefined ? {} : { max_attempts: maxAttempts };
  return CloudWatchStore.fromUrl(
    cloudWatchUrl(group),
    { cloudwatch: { endpoint: emulator.url, ...settings } },
    overrides,
  );
}
