import { readFile } from 'node:fs/promises';

/**
 * A running attempt is finished when this file appears next to its log (`attempt=1.log.done`):
 * the task runner (or `tasklog run`) creates it after the last byte is written.
 */
export const COMPLETION_MARKER_SUFFIX = '.done';

/** Content of `<log>.done` as `tasklog run` writes it; any other content (or none) still marks the end. */
export interface CompletionMarker {
  /** Whether the task succeeded. */
  state: 'success' | 'failed';
  /** The task process's exit code (128 + n for a signal), when there was a process. */
  exitCode: number | null;
  /** ISO-8601 UTC. */
  finishedAt: string;
}

/**
 * Reads the completion marker of the log at `file`: undefined when there is none, else what it
 * says (`exitCode` null when it is empty or was not written by `tasklog run`, e.g. `touch`).
 */
export async function readCompletionMarker(
  file: string,
): Promise<{ exitCode: number | null } | undefined> {
  let text: string;
  try {
    text = await readFile(`${file}${COMPLETION_MARKER_SUFFIX}`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // Unreadable but present (permissions, a folder): it still says the log is finished.
    return { exitCode: null };
  }
  try {
    const parsed = JSON.parse(text) as Partial<CompletionMarker>;
    return { exitCode: Number.isSafeInteger(parsed.exitCode) ? (parsed.exitCode as number) : null };
  } catch {
    return { exitCode: null };
  }
}

/** Whether the log at `file` has its completion marker. */
export async function hasCompletionMarker(file: string): Promise<boolean> {
  return (await readCompletionMarker(file)) !== undefined;
}
