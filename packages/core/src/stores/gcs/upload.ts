import { createHash } from 'node:crypto';
import { type Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { FileMetadata } from '@google-cloud/storage';
import { ConflictError, IntegrityError } from '../../errors.js';
import type { UploadJournal } from '../../store.js';
import type { Backend, Sdk } from './client.js';
import { statusOf } from './errors.js';
import { LOG_CONTENT_TYPE, META_SIZE, stampVerified, verifiedSha256 } from './final-object.js';
import { cancelSession, parseUploadState, sessionStatus, type UploadState } from './session.js';

export interface ResumableUploadOptions {
  /** Names the log in errors: the local file, or the log being finished. */
  label: string;
  journal?: UploadJournal;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  replace: boolean;
}

/**
 * One resumable upload of the log `source()` yields (a finished file, or a writer's chunks) as
 * `object`, gzip-encoded when the store compresses. The session URI is saved in `journal` before
 * the first byte goes out; a later call with the same journal asks the session how far it got
 * and sends only the rest. The source is read from its start every time: the bytes the session
 * holds are not sent again, but the log's sha256 and the object's crc32c cover every byte. With
 * gzip the session holds compressed bytes; zlib with the same settings compresses the same input
 * to the same output, so the skipped prefix matches what was sent (the crc32c check catches the
 * case where it does not).
 *
 * The object is created with `tasklog-size` only; `tasklog-sha256` is patched on once its size
 * and crc32c match what the checked log compresses to. A new session is created with
 * ifGenerationMatch 0 (ConflictError if the log exists) or, with `replace`, the live generation.
 */
export async function uploadResumable(
  be: Backend,
  object: string,
  source: () => Readable,
  expected: { size: number; sha256: string },
  options: ResumableUploadOptions,
): Promise<void> {
  const { journal, signal, onProgress, label } = options;
  const compression = be.options.compression;
  const target = be.bucket.file(object);
  const metadata: FileMetadata = {
    contentType: LOG_CONTENT_TYPE,
    ...(compression === 'gzip' ? { contentEncoding: 'gzip' } : { contentLength: expected.size }),
    metadata: { [META_SIZE]: String(expected.size) },
  };
  const saved = parseUploadState(await journal?.load());
  let state: UploadState | undefined =
    saved &&
    saved.object === object &&
    saved.size === expected.size &&
    saved.sha256 === expected.sha256 &&
    saved.compression === compression
      ? saved
      : undefined;
  if (saved && !state) await cancelSession(saved.uri, signal);

  let persisted = 0;
  if (state) {
    const status = await sessionStatus(be, state.uri, object, signal);
    if (status.kind === 'complete') {
      // The session finished before a crash, perhaps before its check: the object is ours if
      // it holds exactly what the log compresses to.
      const meta = await be.metadata(object, signal);
      const sent = meta && (await measure(be, source, expected, label, signal));
      if (meta && sent && Number(meta.size) === sent.size && meta.crc32c === sent.crc32c) {
        onProgress?.(expected.size, expected.size);
        if (verifiedSha256(meta) !== expected.sha256) {
          await stampVerified(be, object, meta, expected, signal);
        }
        await journal?.save(null);
        return;
      }
      state = undefined;
    } else if (status.kind === 'gone') {
      state = undefined;
    } else {
      persisted = status.persisted;
    }
  }
  if (!state) {
    const live = await be.metadata(object, signal);
    if (live && !options.replace) {
      throw new ConflictError(`log ${be.describe(object)} is already complete`);
    }
    let uri: string;
    try {
      [uri] = await target.createResumableUpload({
        metadata,
        preconditionOpts: { ifGenerationMatch: live ? Number(live.generation) : 0 },
      });
    } catch (err) {
      if (statusOf(err) === 412) {
        throw new ConflictError(`log ${be.describe(object)} changed meanwhile`, {
          cause: err,
        });
      }
      throw be.error(err, 'start an upload of', object, signal);
    }
    state = { version: 1, object, uri, ...expected, compression };
    await journal?.save(state);
  }

  // Progress counts log bytes. A gzip session's offset counts compressed bytes, which do not
  // map back to log bytes up front: the first report then waits until the compressed stream
  // has passed what the session holds, and gives the log bytes read by then.
  const skip = new SkipAndCrc(persisted, be.sdk);
  const resumedGzip = compression === 'gzip' && persisted > 0;
  const resumedRaw = compression === 'none' ? persisted : 0;
  let reported = -1;
  const report = (n: number) => {
    reported = n;
    onProgress?.(n, expected.size);
  };
  if (!resumedGzip) report(resumedRaw);
  const verify = verifyingStream(expected.size, expected.sha256, label, (n) => {
    if (resumedGzip ? skip.total > persisted : n > resumedRaw) report(n);
  });
  const stages: (Readable | Transform | Writable)[] = [source(), verify];
  if (compression === 'gzip') stages.push(createGzip());
  stages.push(
    skip,
    target.createWriteStream({
      uri: state.uri,
      offset: persisted,
      resumable: true,
      chunkSize: be.options.uploadChunkSize,
      metadata,
      // The SDK can only check what it saw; a resumed upload is checked below instead.
      validation: persisted === 0 ? 'crc32c' : false,
    }),
  );
  try {
    await pipeline(stages, { signal });
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    if (statusOf(err) === 412) {
      throw new ConflictError(`log ${be.describe(object)} changed meanwhile`, { cause: err });
    }
    throw be.error(err, 'upload', object, signal);
  }
  const meta = target.metadata;
  if (Number(meta.size) !== skip.total || meta.crc32c !== skip.crc32c()) {
    await be.deleteObject(object, meta.generation, signal).catch(() => undefined);
    await journal?.save(null);
    throw new IntegrityError(
      `uploaded ${be.describe(object)} holds ${meta.size} bytes with crc32c ${meta.crc32c}, ` +
        `expected ${skip.total} bytes with crc32c ${skip.crc32c()}; object removed`,
    );
  }
  if (reported !== expected.size) report(expected.size);
  await stampVerified(be, object, meta, expected, signal);
  await journal?.save(null);
}

/** Size and crc32c of what uploading the log `source()` yields sends (compressed, for gzip). */
async function measure(
  be: Backend,
  source: () => Readable,
  expected: { size: number; sha256: string },
  label: string,
  signal?: AbortSignal,
): Promise<{ size: number; crc32c: string }> {
  const crc = new SkipAndCrc(Number.POSITIVE_INFINITY, be.sdk);
  const stages: (Readable | Transform)[] = [
    source(),
    verifyingStream(expected.size, expected.sha256, label),
  ];
  if (be.options.compression === 'gzip') stages.push(createGzip());
  stages.push(crc);
  try {
    // The end of a pipeline run only to measure: it drops what it is given.
    const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    await pipeline([...stages, sink], { signal });
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    throw be.error(err, 'read the log for', label, signal);
  }
  return { size: crc.total, crc32c: crc.crc32c() };
}

/**
 * Passes bytes through while counting and hashing them; fails the stream unless they are exactly
 * `size` bytes with `sha256`. It holds back the latest piece until that check passed, so the
 * upload behind it never receives its last byte (and never finalizes) for wrong content.
 */
function verifyingStream(
  size: number,
  sha256: string,
  label: string,
  onBytes?: (n: number) => void,
): Transform {
  const hash = createHash('sha256');
  let seen = 0;
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      seen += chunk.length;
      if (seen > size) {
        callback(new IntegrityError(`${label} has more than the expected ${size} bytes`));
        return;
      }
      onBytes?.(seen);
      const out = held;
      held = chunk;
      callback(null, out);
    },
    flush(callback) {
      const actual = hash.digest('hex');
      if (seen !== size || actual !== sha256) {
        callback(
          new IntegrityError(
            `${label} has ${seen} bytes with sha256 ${actual}, expected ${size} bytes with sha256 ${sha256}`,
          ),
        );
        return;
      }
      callback(null, held);
    },
  });
}

/**
 * Computes the crc32c of every byte of an upload and drops the first `skip` of them: the bytes a
 * resumed session already holds.
 */
class SkipAndCrc extends Transform {
  total = 0;
  readonly #crc: InstanceType<Sdk['CRC32C']>;

  constructor(
    private readonly skip: number,
    sdk: Sdk,
  ) {
    super();
    this.#crc = new sdk.CRC32C();
  }

  crc32c(): string {
    return this.#crc.toString();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.#crc.update(chunk);
    const start = this.total;
    this.total += chunk.length;
    if (this.total > this.skip) this.push(chunk.subarray(Math.max(0, this.skip - start)));
    callback();
  }
}
