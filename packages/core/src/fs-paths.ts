import { constants } from 'node:fs';
import { type FileHandle, lstat, open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { BackendUnavailableError, InvalidInputError, NotFoundError } from './errors.js';

/**
 * Joins `relativePath` (always `/`-separated) to `root` and returns the absolute path, which is
 * guaranteed to lie strictly inside `root`. Throws InvalidInputError for an absolute path, a `..`
 * segment, a NUL or a backslash (a backslash is a separator on Windows, so a name holding one
 * would mean different files on different machines), or anything that resolves to `root` itself
 * or outside it.
 *
 * This is a lexical check only; use assertRealPathInside before opening, to catch symlinks.
 */
export function resolveInside(root: string, relativePath: string): string {
  const fail = (why: string): never => {
    throw new InvalidInputError(`path ${JSON.stringify(relativePath)} is not allowed: ${why}`);
  };
  if (!path.isAbsolute(root)) {
    throw new InvalidInputError(`root folder ${JSON.stringify(root)} must be an absolute path`);
  }
  if (relativePath.includes('\u0000')) fail('it contains a NUL character');
  if (relativePath.includes('\\')) fail('it contains a backslash');
  if (relativePath.startsWith('/') || path.isAbsolute(relativePath)) fail('it is absolute');
  if (relativePath.split('/').includes('..')) fail('it contains a ".." segment');
  const base = path.resolve(root);
  const resolved = path.resolve(base, relativePath);
  if (!isStrictlyInside(base, resolved)) fail('it does not lead inside the root folder');
  return resolved;
}

/**
 * Resolves symlinks in `root` and in `target` (or, when `target` does not exist yet, in its
 * nearest existing ancestor) and throws InvalidInputError if the result is not inside `root`,
 * e.g. because a folder in the archive is a symlink to `/etc`. NotFoundError when `root` itself
 * is missing; BackendUnavailableError for other file system failures.
 */
export async function assertRealPathInside(root: string, target: string): Promise<void> {
  const base = path.resolve(root);
  const realRoot = await realpathOrThrow(base, base);
  let current = path.resolve(base, target);
  let exact = true;
  for (;;) {
    let real: string | undefined;
    try {
      real = await realpath(current);
    } catch (err) {
      if (!isMissing(err)) throw fsFailure(err, base, current);
      // realpath fails the same way for a missing entry and for a dangling symlink; creating a
      // file through the latter would write wherever it points.
      if (await isSymlink(current)) {
        throw new InvalidInputError(
          `path ${JSON.stringify(path.relative(base, current))} is a dangling symlink`,
          { cause: err },
        );
      }
    }
    if (real !== undefined) {
      const ok = exact ? isStrictlyInside(realRoot, real) : isInsideOrEqual(realRoot, real);
      if (!ok) {
        throw new InvalidInputError(
          `path ${JSON.stringify(path.relative(base, current))} leads outside the root folder (through a symlink)`,
        );
      }
      return;
    }
    const parent = path.dirname(current);
    // Reaching the root lexically without finding anything means the root vanished meanwhile.
    if (parent === current || !isInsideOrEqual(base, parent)) {
      throw new NotFoundError(`root folder ${base} does not exist`);
    }
    current = parent;
    exact = false;
  }
}

function isStrictlyInside(base: string, candidate: string): boolean {
  const rel = path.relative(base, candidate);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

function isInsideOrEqual(base: string, candidate: string): boolean {
  return base === candidate || isStrictlyInside(base, candidate);
}

async function isSymlink(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isSymbolicLink();
  } catch {
    return false;
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function realpathOrThrow(p: string, base: string): Promise<string> {
  try {
    return await realpath(p);
  } catch (err) {
    if (isMissing(err))
      throw new NotFoundError(`root folder ${base} does not exist`, { cause: err });
    throw fsFailure(err, base, p);
  }
}

function fsFailure(err: unknown, base: string, p: string): Error {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'error';
  const rel = path.relative(base, p) || '.';
  if (code === 'ENAMETOOLONG' || code === 'EINVAL' || code === 'ELOOP') {
    return new InvalidInputError(`cannot resolve ${JSON.stringify(rel)}: ${code}`, { cause: err });
  }
  return new BackendUnavailableError(`cannot resolve ${JSON.stringify(rel)}: ${code}`, {
    cause: err,
  });
}

/**
 * Opens a file under `root` for reading, ONCE, without following links: `O_NOFOLLOW` refuses a
 * symlink as the last component, the opened descriptor must be a regular file, the same file
 * (device and inode) the path names now, and the path's real location — every folder on the
 * way resolved — must be exactly where it says, strictly inside `root`. A task that swaps its
 * log for a link between any check and the open gets a refusal, never another file's bytes.
 * Size, hashing and uploading then read through the returned handle only.
 * Throws InvalidInputError (a link, not a regular file, outside `root`), NotFoundError.
 */
export async function openInside(root: string, file: string): Promise<FileHandle> {
  const abs = path.resolve(file);
  const realRoot = await realpathOrThrow(path.resolve(root), path.resolve(root));
  const lexical = path.join(realRoot, path.relative(path.resolve(root), abs));
  let fh: FileHandle;
  try {
    fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EMLINK') {
      throw new InvalidInputError(`${abs} is a symbolic link; logs are never read through links`, {
        cause: err,
      });
    }
    if (isMissing(err)) throw new NotFoundError(`no such file: ${abs}`, { cause: err });
    throw fsFailure(err, root, abs);
  }
  try {
    const [opened, named, real] = await Promise.all([
      fh.stat(),
      lstat(abs).catch(() => undefined),
      realpath(abs).catch(() => undefined),
    ]);
    if (!opened.isFile()) throw new InvalidInputError(`${abs} is not a regular file`);
    if (!named || named.ino !== opened.ino || named.dev !== opened.dev) {
      throw new InvalidInputError(`${abs} was replaced while it was opened`);
    }
    if (real !== lexical || !isStrictlyInside(realRoot, real)) {
      throw new InvalidInputError(
        `${abs} leads outside ${root} or through a symbolic link on the way; logs are read only from real folders inside it`,
      );
    }
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}
