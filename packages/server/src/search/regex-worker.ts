import { Worker } from 'node:worker_threads';
import { InvalidInputError } from '@tasklog/core';

/**
 * The worker's code. V8's regular expressions backtrack, so a pattern such as `(a+)+$` can take
 * exponential time on one line, and nothing interrupts a running match on the thread that runs
 * it: matching happens on a worker thread that is terminated when the search's time is up.
 *
 * It is source text evaluated by the worker, not a module file next to this one: the proxy runs
 * from `dist/`, from the CLI's esbuild bundle and, under test, from TypeScript sources, and a
 * file path would be right in only one of those layouts. It must stay self-contained.
 *
 * Each message is `{ texts, cap }`. Answers are `{ found, upTo, last }`: `found` a flat list of
 * `[textIndex, index, length]` triples (UTF-16 indexes), in order, for the texts before `upTo`,
 * `cap` matches at most in all. Progress goes out after each text with a match and every 50 ms,
 * so what was found survives the worker's termination in the middle of a batch.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const re = new RegExp(workerData.source, workerData.flags);
parentPort.on('message', ({ texts, cap }) => {
  let found = [];
  let total = 0;
  let posted = Date.now();
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      found.push(i, m.index, m[0].length);
      if (++total >= cap) {
        parentPort.postMessage({ found, upTo: i + 1, last: true });
        return;
      }
      // An empty match would match again at the same place.
      if (m[0].length === 0) re.lastIndex++;
    }
    if (found.length > 0 || Date.now() - posted >= 50) {
      parentPort.postMessage({ found, upTo: i + 1, last: false });
      found = [];
      posted = Date.now();
    }
  }
  parentPort.postMessage({ found, upTo: texts.length, last: true });
});
`;

/** What a batch gave: matches in the texts before `upTo`; `complete` false when cut by time. */
export interface BatchMatches {
  found: number[];
  upTo: number;
  complete: boolean;
}

/**
 * One search's regular expression, matched on a worker thread of its own. The pattern is
 * compiled here first, so a syntax error is a 400 before any thread starts.
 */
export class RegexWorker {
  #worker: Worker | undefined;
  readonly #source: string;
  readonly #flags: string;

  constructor(source: string, flags: string) {
    try {
      new RegExp(source, flags);
    } catch (err) {
      throw new InvalidInputError(
        `q is not a valid regular expression: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    this.#source = source;
    this.#flags = flags;
  }

  /**
   * The matches in `texts`, at most `cap`. When `signal` aborts first the worker is terminated
   * and the matches found until then are returned, with the texts they cover.
   */
  match(texts: string[], cap: number, signal: AbortSignal): Promise<BatchMatches> {
    const result: BatchMatches = { found: [], upTo: 0, complete: false };
    if (signal.aborted) return Promise.resolve(result);
    this.#worker ??= new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { source: this.#source, flags: this.#flags },
      // A pattern that builds huge intermediate results must not take the proxy's memory.
      resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 },
    });
    const worker = this.#worker;
    return new Promise<BatchMatches>((resolve, reject) => {
      const done = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
      };
      const onMessage = (part: { found: number[]; upTo: number; last: boolean }) => {
        for (const n of part.found) result.found.push(n);
        result.upTo = part.upTo;
        if (!part.last) return;
        done();
        result.complete = true;
        resolve(result);
      };
      const onError = (err: Error) => {
        done();
        this.close();
        reject(
          new InvalidInputError(`the regular expression could not be run: ${err.message}`, {
            cause: err,
          }),
        );
      };
      const onExit = () => {
        done();
        reject(new InvalidInputError('the regular expression could not be run: its worker exited'));
      };
      const onAbort = () => {
        done();
        this.close();
        resolve(result);
      };
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
      signal.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ texts, cap });
    });
  }

  /** Terminates the worker (a match running on it stops at once). */
  close(): void {
    const worker = this.#worker;
    this.#worker = undefined;
    // Termination cannot fail in a way worth reporting; the search has its answer.
    void worker?.terminate().catch(() => undefined);
  }
}
