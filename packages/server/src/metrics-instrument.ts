import type {
  AttemptKey,
  Catalog,
  LocalLogFile,
  LogStore,
  LogWriter,
  UploadOptions,
} from '@tasklog/core';

/**
 * `store` as it is, but every byte it commits is reported to `onBytes`: a writer's flushes and
 * its finish (the growth of its committed offset, from where it opened: a resumed writer reports
 * only what it adds), and an upload's progress past where it resumed. Bytes handed to a writer
 * that is aborted before they are committed are not counted: the next writer sends them again.
 *
 * A Proxy, not a class implementing LogStore: the store's optional members (`upload`, `sweep`)
 * and capabilities stay exactly as the backend has them. Methods run on the store itself, whose
 * private fields a Proxy receiver could not reach.
 */
export function countStoredBytes(store: LogStore, onBytes: (bytes: number) => void): LogStore {
  const openWriter = async (...args: Parameters<LogStore['openWriter']>) =>
    countingWriter(await store.openWriter(...args), onBytes);
  const upload = store.upload
    ? (key: AttemptKey, file: LocalLogFile, options: UploadOptions = {}) => {
        let last: number | undefined;
        return store.upload!(key, file, {
          ...options,
          onProgress: (done, total) => {
            // The first report is where an interrupted upload resumes: stored before, not now.
            if (last !== undefined && done > last) onBytes(done - last);
            last = Math.max(last ?? 0, done);
            options.onProgress?.(done, total);
          },
        });
      }
    : undefined;
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'openWriter') return openWriter;
      if (prop === 'upload') return upload;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function countingWriter(writer: LogWriter, onBytes: (bytes: number) => void): LogWriter {
  let counted = writer.committedOffset;
  const committed = (offset: number) => {
    if (offset > counted) onBytes(offset - counted);
    counted = Math.max(counted, offset);
  };
  return {
    get committedOffset() {
      return writer.committedOffset;
    },
    get offset() {
      return writer.offset;
    },
    append: (bytes) => writer.append(bytes),
    async flush() {
      const offset = await writer.flush();
      committed(offset);
      return offset;
    },
    async finish(expected) {
      await writer.finish(expected);
      committed(expected.size);
    },
    abort: () => writer.abort(),
  };
}

/**
 * `catalog` as it is, but each of its calls that fails (throws or rejects) is reported to
 * `onError` before the error goes on. `close` is not counted.
 */
export function countCatalogErrors(catalog: Catalog, onError: (err: unknown) => void): Catalog {
  return new Proxy(catalog, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || prop === 'close') {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (...args: unknown[]) => {
        try {
          const result = value.apply(target, args);
          if (result instanceof Promise) {
            return result.catch((err: unknown) => {
              onError(err);
              throw err;
            });
          }
          return result;
        } catch (err) {
          onError(err);
          throw err;
        }
      };
    },
  });
}
