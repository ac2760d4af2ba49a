import type { Bucket, File, FileMetadata } from '@google-cloud/storage';
import { BackendUnavailableError, IntegrityError, type TasklogError } from '../../errors.js';
import { importOptional } from '../../optional-import.js';
import { throwIfAborted } from '../shared/store-checks.js';
import { gcsError, isObjectMissing, statusOf } from './errors.js';
import type { ResolvedGcsOptions } from './settings.js';

export type Sdk = typeof import('@google-cloud/storage');

/** Content type of the objects that are not a finished log: chunks, compose intermediates. */
export const CHUNK_CONTENT_TYPE = 'application/octet-stream';
const DELETE_CONCURRENCY = 8;

/**
 * The SDK client, built on first use (`tasklog fetch` from a folder never loads it), and the
 * object operations the store and its writers share. Each maps the SDK's errors where it knows
 * the action and the object (see `gcsError`).
 */
export class Backend {
  private constructor(
    readonly options: ResolvedGcsOptions,
    readonly sdk: Sdk,
    readonly bucket: Bucket,
  ) {}

  static async connect(options: ResolvedGcsOptions): Promise<Backend> {
    let sdk: Sdk;
    try {
      sdk = await importOptional(
        '@google-cloud/storage',
        'the gcs store',
        () => import('@google-cloud/storage'),
      );
    } catch (err) {
      throw new BackendUnavailableError('cannot load @google-cloud/storage', { cause: err });
    }
    const maxAttempts = options.maxAttempts;
    const storage = new sdk.Storage({
      projectId: options.projectId,
      apiEndpoint: options.apiEndpoint,
      retryOptions: {
        // The SDK treats maxRetries 0 as "unset" (its default, 3), so one attempt means autoRetry off.
        autoRetry: maxAttempts > 1,
        maxRetries: Math.max(1, maxAttempts - 1),
        ...(options.maxRetryDelaySeconds !== undefined
          ? { maxRetryDelay: options.maxRetryDelaySeconds }
          : {}),
        // Every write is idempotent by construction: objects have deterministic names and are
        // created with ifGenerationMatch 0, so a retried request either lands once or gets 412.
        idempotencyStrategy: sdk.IdempotencyStrategy.RetryAlways,
      },
      authClient: options.impersonationChain?.length
        ? await impersonatedClient(options.impersonationChain)
        : undefined,
    });
    return new Backend(options, sdk, storage.bucket(options.bucket));
  }

  describe(object: string): string {
    return `gs://${this.bucket.name}/${object}`;
  }

  error(
    err: unknown,
    action: string,
    object: string | undefined,
    signal?: AbortSignal,
  ): TasklogError {
    return gcsError(err, action, this.bucket.name, object, signal);
  }

  /** The object's metadata, or undefined when it does not exist. */
  async metadata(object: string, signal?: AbortSignal): Promise<FileMetadata | undefined> {
    throwIfAborted(signal);
    try {
      const [meta] = await this.bucket.file(object).getMetadata();
      return meta;
    } catch (err) {
      if (isObjectMissing(err)) return undefined;
      throw this.error(err, 'look up', object, signal);
    }
  }

  async *listFiles(prefix: string, signal?: AbortSignal): AsyncGenerator<File> {
    let pageToken: string | undefined;
    do {
      throwIfAborted(signal);
      let files: File[];
      let next: { pageToken?: string } | null | undefined;
      try {
        [files, next] = await this.bucket.getFiles({
          prefix,
          autoPaginate: false,
          maxResults: this.options.listPageSize,
          pageToken,
        });
      } catch (err) {
        throw this.error(err, 'list', `${prefix}*`, signal);
      }
      yield* files;
      pageToken = next?.pageToken || undefined;
    } while (pageToken);
  }

  async *listNames(prefix: string, signal?: AbortSignal): AsyncGenerator<string> {
    for await (const file of this.listFiles(prefix, signal)) yield file.name;
  }

  /** Every object under `prefix`; used for one attempt's chunks, so it stays small. */
  async listAll(prefix: string, signal?: AbortSignal): Promise<File[]> {
    const out: File[] = [];
    for await (const file of this.listFiles(prefix, signal)) out.push(file);
    return out;
  }

  /**
   * Creates an object that must not exist yet (a chunk, the running marker). If it exists, a
   * retry of our own request may have created it: the same bytes are success, other bytes are
   * an IntegrityError.
   */
  async createIfMissing(object: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    const file = this.bucket.file(object);
    try {
      await file.save(data, {
        resumable: false,
        contentType: CHUNK_CONTENT_TYPE,
        preconditionOpts: { ifGenerationMatch: 0 },
        validation: 'crc32c',
      });
      return;
    } catch (err) {
      if (statusOf(err) !== 412) throw this.error(err, 'write', object, signal);
    }
    const existing = await this.metadata(object, signal);
    const crc = new this.sdk.CRC32C();
    crc.update(data);
    if (!existing || Number(existing.size) !== data.length || existing.crc32c !== crc.toString()) {
      throw new IntegrityError(
        `${this.describe(object)} already exists with other bytes (${existing?.size} bytes, crc32c ${existing?.crc32c}); ` +
          `expected ${data.length} bytes with crc32c ${crc.toString()}`,
      );
    }
  }

  /** Deletes one object; a missing one is fine. */
  async deleteObject(
    object: string,
    generation: string | number | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    throwIfAborted(signal);
    try {
      await this.bucket
        .file(object)
        .delete({ ...(generation !== undefined ? { ifGenerationMatch: generation } : {}) });
    } catch (err) {
      if (isObjectMissing(err)) return;
      throw this.error(err, 'delete', object, signal);
    }
  }

  /** Deletes objects, a few at a time; missing ones are fine. */
  async deleteAll(files: readonly File[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < files.length; i += DELETE_CONCURRENCY) {
      const batch = files.slice(i, i + DELETE_CONCURRENCY);
      const ps = batch.map((f) => this.deleteObject(f.name, undefined, signal));
      await Promise.allSettled(ps);
      await Promise.all(ps);
    }
  }
}

/** An auth client acting as the chain's last service account, on top of ADC. */
async function impersonatedClient(chain: readonly string[]) {
  const { GoogleAuth, Impersonated } = await importOptional(
    'google-auth-library',
    'the gcs store',
    () => import('google-auth-library'),
  );
  try {
    const sourceClient = await new GoogleAuth({
      scopes: ['https://www.googleapis.com/auth/cloud-platform'],
    }).getClient();
    return new Impersonated({
      sourceClient,
      targetPrincipal: chain[chain.length - 1]!,
      delegates: chain.slice(0, -1),
      targetScopes: ['https://www.googleapis.com/auth/devstorage.read_write'],
      lifetime: 3600,
    });
  } catch (err) {
    throw new BackendUnavailableError(
      `cannot get Application Default Credentials to impersonate ${chain[chain.length - 1]}: ` +
        `${err instanceof Error ? err.message : String(err)}; run \`gcloud auth application-default login\` ` +
        'or set GOOGLE_APPLICATION_CREDENTIALS',
      { cause: err },
    );
  }
}
