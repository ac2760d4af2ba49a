import { BackendUnavailableError } from './errors.js';

/**
 * Imports an optional peer dependency of @tasklog/core (a backend's SDK, a catalog driver): a
 * tool that reads S3 logs should not have to install Google's or Elastic's clients. `load` is
 * the literal `() => import('pkg')`, so TypeScript and bundlers still see the import; `user`
 * says who needs it (`the s3 store`).
 *
 * @throws BackendUnavailableError naming the package to install when it is missing.
 */
export async function importOptional<T>(
  pkg: string,
  user: string,
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (
      (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') &&
      String(e.message).includes(pkg)
    ) {
      throw new BackendUnavailableError(
        `${user} needs the package ${pkg}, which is not installed: npm install ${pkg}`,
        { cause: err },
      );
    }
    throw err;
  }
}
