import { SingleBar } from 'cli-progress';

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

const NONE: Progress = { update() {}, stop() {} };

/** A byte progress bar on stderr, only when a person is watching (stdout and stderr are TTYs). */
export function progressBar(label: string, enabled = true): Progress {
  if (!enabled || !process.stdout.isTTY || !process.stderr.isTTY) return NONE;
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | {speed} MiB/s`,
    hideCursor: true,
    stream: process.stderr,
  });
  const started = Date.now();
  let running = false;
  const mib = (n: number) => (n / 1048576).toFixed(1);
  return {
    update(done, total) {
      const payload = {
        doneMiB: mib(done),
        totalMiB: mib(total),
        speed: mib(done / Math.max((Date.now() - started) / 1000, 0.001)),
      };
      if (!running) {
        bar.start(total, done, payload);
        running = true;
      } else {
        bar.setTotal(total);
        bar.update(done, payload);
      }
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
