import { createHash } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortedError, BackendUnavailableError, ConflictError } from './errors.js';

/** How often a holder renews its lease (the lock file's mtime). */
const RENEW_MS = 2_000;
/** A lock not renewed for this long belongs to a process that is gone (killed, frozen, or on another machine that died). */
const STALE_MS = 15_000;

/** The attempt is being shipped by another live process right now (its lock is held). */
export class AttemptBusyError extends ConflictError {}

export interface AttemptLockOptions {
  /** `wait`: poll until the lock is free (or stale); `fail`: ConflictError at once. Default `fail`. */
  mode?: 'wait' | 'fail';
  signal?: AbortSignal;
}

export interface AttemptLock {
  /** Removes the lock file; idempotent. */
  release(): Promise<void>;
}

interface Holder {
  pid: number;
  host: string;
  since: string;
}

/**
 * Takes the per-attempt lock that every shipper of one attempt (`tasklog ship`, `tasklog run`,
 * `tasklog ship --follow`, the agent) holds while it writes the attempt's journal and archive,
 * so two of them never interleave. The lock is a file in the state folder created exclusively
 * (`wx`), holding the owner's pid and host, and kept alive by renewing its mtime every 2 s.
 *
 * A lock is stale, and taken over, when it was not renewed for 15 s, or when its holder ran on
 * this host and that pid is gone. The lease is what works across PID namespaces (a task in one
 * container, the agent in a sidecar sharing the state folder); the pid check only makes a
 * SIGKILLed holder on the same host free its lock at once. Taking over unlinks the stale file
 * only if it is still the same inode that was judged stale, which narrows (but cannot close,
 * without OS locks Node lacks) the window in which two contenders both take over one stale lock;
 * the stores' writes are idempotent, so even then nothing is lost or doubled.
 */
export async function acquireAttemptLock(
  stateFolder: string,
  relativePath: string,
  options: AttemptLockOptions = {},
): Promise<AttemptLock> {
  const { signal } = options;
  const path = attemptLockPath(stateFolder, relativePath);
  const folder = dirname(path);
  await mkdir(folder, { recursive: true }).catch((cause) => {
    throw new BackendUnavailableError(`cannot create the lock folder ${folder}`, { cause });
  });
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  for (let waited = 0; ; waited++) {
    if (signal?.aborted) throw new AbortedError('waiting for the attempt lock was aborted');
    if (await tryCreate(path, me)) return holdLock(path);
    const held = await inspect(path);
    if (held === undefined) continue; // released meanwhile: try again at once
    if (held.stale) {
      await unlinkIfSame(path, held.ino);
      continue;
    }
    if (options.mode !== 'wait') {
      throw new AttemptBusyError(
        `${relativePath} is being shipped by another process (pid ${held.holder?.pid ?? '?'} on ` +
          `${held.holder?.host ?? '?'}); wait for it to finish or stop it`,
      );
    }
    try {
      await sleep(Math.min(1_000, 50 * 2 ** Math.min(waited, 5)), undefined, { signal });
    } catch (cause) {
      throw new AbortedError('waiting for the attempt lock was aborted', { cause });
    }
  }
}

/** Where the lock file of the attempt at `relativePath` lives. */
export function attemptLockPath(stateFolder: string, relativePath: string): string {
  const id = createHash('sha256').update(relativePath).digest('hex').slice(0, 32);
  return join(stateFolder, 'locks', `${id}.lock`);
}

async function tryCreate(path: string, me: Holder): Promise<boolean> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new BackendUnavailableError(`cannot create the lock file ${path}`, { cause: err });
  }
  try {
    await fh.writeFile(JSON.stringify(me));
  } finally {
    await fh.close();
  }
  return true;
}

async function inspect(
  path: string,
): Promise<{ ino: number; stale: boolean; holder: Holder | undefined } | undefined> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return undefined; // released meanwhile
  // Unparsable (a holder killed between creating and writing it): judged by its age alone.
  const holder = await readFile(path, 'utf8')
    .then(
      (text) => JSON.parse(text) as Holder,
      () => undefined,
    )
    .catch(() => undefined);
  const expired = Date.now() - info.mtimeMs > STALE_MS;
  const deadHere = holder !== undefined && holder.host === hostname() && !isAlive(holder.pid);
  return { ino: info.ino, stale: expired || deadHere, holder };
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function unlinkIfSame(path: string, ino: number): Promise<void> {
  const now = await stat(path).catch(() => undefined);
  if (now?.ino === ino) await unlink(path).catch(() => undefined);
}

function holdLock(path: string): AttemptLock {
  let released = false;
  const renew = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, RENEW_MS);
  renew.unref();
  return {
    async release() {
      if (released) return;
      released = true;
      clearInterval(renew);
      await unlink(path).catch(() => undefined);
    },
  };
}
