import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AttemptKey } from './attempt-key.js';
import { formatAttempt } from './attempt-key.js';
import { COMPLETION_MARKER_SUFFIX, type CompletionMarker } from './completion-marker.js';
import { BackendUnavailableError, ConflictError } from './errors.js';
import { assertRealPathInside, resolveInside } from './fs-paths.js';
import { PathTemplate } from './path-template.js';
import type { MaskingStream, SecretMasker } from './secret-masker.js';

/** Options of `openAttemptLog`. */
export interface AttemptLogOptions {
  /** Folder the attempt logs live under (config `core.base_log_folder`); absolute. */
  baseLogFolder: string;
  /** Where under the base folder the attempt's log goes. */
  pathTemplate: PathTemplate | string;
  /** The attempt whose log this is. */
  key: AttemptKey;
  /** Secrets replaced by `***` before any byte reaches the file. Default: none. */
  masker?: SecretMasker;
  /** Prefix each line with `[ISO-8601 UTC time] `, taken when its first byte is written. */
  timestamps?: boolean;
}

/** How an attempt ended; written to the completion marker. */
export interface AttemptOutcome {
  /** Whether the task succeeded. */
  state: 'success' | 'failed';
  /** The task process's exit code (128 + n for a signal), when there was a process. */
  exitCode?: number;
}

/** An attempt's log being written on the worker. */
export interface AttemptLog {
  /** Absolute path of the log file. */
  readonly path: string;
  /**
   * Appends bytes (masked, optionally timestamped). Resolves once they are in the file, so
   * awaiting each write is the backpressure; concurrent writes are applied in call order.
   * BackendUnavailableError when the file cannot be written; ConflictError after close().
   */
  write(data: Uint8Array | string): Promise<void>;
  /**
   * Writes what the masker held back, syncs the file, then creates the completion marker
   * `<path>.done` — only then may a shipper treat the log as complete.
   */
  close(outcome: AttemptOutcome): Promise<void>;
}

/**
 * Creates (or continues) the log file of `key` under the base folder. ConflictError when the
 * attempt already has a completion marker; InvalidInputError when the rendered path would leave
 * the base folder (also through a symlink).
 */
export async function openAttemptLog(options: AttemptLogOptions): Promise<AttemptLog> {
  const template =
    typeof options.pathTemplate === 'string'
      ? new PathTemplate(options.pathTemplate)
      : options.pathTemplate;
  const path = resolveInside(options.baseLogFolder, template.render(options.key));
  const fail = (what: string, cause: unknown) =>
    new BackendUnavailableError(`cannot ${what} ${path}: ${(cause as Error).message}`, { cause });
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (cause) {
    throw fail('create the folder of', cause);
  }
  await assertRealPathInside(options.baseLogFolder, path);
  const finished = await stat(`${path}${COMPLETION_MARKER_SUFFIX}`).then(
    () => true,
    () => false,
  );
  if (finished) {
    throw new ConflictError(
      `${formatAttempt(options.key)} has already finished (${path}${COMPLETION_MARKER_SUFFIX} exists); use another try number`,
    );
  }
  let fh: FileHandle;
  try {
    // Append: a wrapper restarted for the same attempt continues its log instead of truncating
    // bytes a shipper may already have sent.
    fh = await open(path, 'a');
  } catch (cause) {
    throw fail('open', cause);
  }
  return new FileAttemptLog(path, fh, options.masker?.stream(), options.timestamps ?? false);
}

class FileAttemptLog implements AttemptLog {
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private atLineStart = true;

  constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly masking: MaskingStream | undefined,
    private readonly timestamps: boolean,
  ) {}

  write(data: Uint8Array | string): Promise<void> {
    if (this.closed) {
      return Promise.reject(new ConflictError(`the log ${this.path} is already closed`));
    }
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.enqueue(async () => {
      const masked = this.masking ? this.masking.push(bytes) : bytes;
      await this.append(masked);
    });
  }

  async close(outcome: AttemptOutcome): Promise<void> {
    if (this.closed) throw new ConflictError(`the log ${this.path} is already closed`);
    this.closed = true;
    try {
      await this.queue;
      if (this.masking) await this.append(this.masking.end());
      await this.fh.sync();
    } finally {
      await this.fh.close();
    }
    const marker: CompletionMarker = {
      state: outcome.state,
      exitCode: outcome.exitCode ?? null,
      finishedAt: new Date().toISOString(),
    };
    // Written beside and renamed, so a shipper never reads a half-written marker.
    const target = `${this.path}${COMPLETION_MARKER_SUFFIX}`;
    const tmp = `${target}.tmp-${process.pid}`;
    try {
      await writeFile(tmp, `${JSON.stringify(marker)}\n`, { flush: true });
      await rename(tmp, target);
    } catch (cause) {
      throw new BackendUnavailableError(
        `cannot create the completion marker ${target}: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  /** Runs `step` after every earlier one; a failed step fails every later one too. */
  private enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.queue.then(step);
    this.queue = run;
    return run;
  }

  private async append(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    const out = this.timestamps ? this.stamp(bytes) : bytes;
    try {
      let written = 0;
      while (written < out.length) {
        const { bytesWritten } = await this.fh.write(out, written, out.length - written);
        written += bytesWritten;
      }
    } catch (cause) {
      throw new BackendUnavailableError(
        `cannot write to ${this.path}: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  /** Prefixes each line started in `bytes`; a partial line continues without a new prefix. */
  private stamp(bytes: Uint8Array): Buffer {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    const parts: Buffer[] = [];
    let pos = 0;
    while (pos < buf.length) {
      if (this.atLineStart) {
        parts.push(Buffer.from(`[${new Date().toISOString()}] `));
        this.atLineStart = false;
      }
      const nl = buf.indexOf(0x0a, pos);
      const end = nl < 0 ? buf.length : nl + 1;
      parts.push(buf.subarray(pos, end));
      if (nl >= 0) this.atLineStart = true;
      pos = end;
    }
    return Buffer.concat(parts);
  }
}
