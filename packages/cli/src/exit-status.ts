// Loads nothing, so `tasklog --help` and usage errors exit without loading the core library.

/** The CLI's exit codes; the README documents them. This is the only place errors become codes. */
export const ExitCode = {
  ok: 0,
  notFound: 1,
  badInput: 2,
  backendUnavailable: 3,
  failed: 4,
} as const;
