/**
 * Python's text handling, as Airflow's task handlers apply it to log bytes, so tests can replay
 * what Airflow shows and writes without Python:
 * - `bytes.decode()` / `.decode("utf-8")` is strict: invalid UTF-8 raises UnicodeDecodeError,
 *   whose message names the first bad sequence (`pythonUtf8Decode` throws the same message);
 * - `Path.read_text()` decodes the same way (in a UTF-8 locale, as Airflow's images set) and, with
 *   universal newlines, turns `\r\n` and a lone `\r` into `\n` (`pythonReadText`).
 */

/** Python's UnicodeDecodeError, with `str(e)` as its message. */
export class PythonUnicodeDecodeError extends Error {
  constructor(
    message: string,
    readonly start: number,
    readonly end: number,
  ) {
    super(message);
    this.name = 'UnicodeDecodeError';
  }
}

/** `bytes.decode("utf-8")`: the text, or PythonUnicodeDecodeError with Python's message. */
export function pythonUtf8Decode(bytes: Uint8Array): string {
  const bad = firstInvalid(bytes);
  if (bad) {
    const span =
      bad.end - bad.start === 1
        ? `byte 0x${bytes[bad.start]!.toString(16).padStart(2, '0')} in position ${bad.start}`
        : `bytes in position ${bad.start}-${bad.end - 1}`;
    throw new PythonUnicodeDecodeError(
      `'utf-8' codec can't decode ${span}: ${bad.reason}`,
      bad.start,
      bad.end,
    );
  }
  return Buffer.from(bytes).toString('utf8');
}

/** `pathlib.Path.read_text()` of a file holding `bytes`, in a UTF-8 locale. */
export function pythonReadText(bytes: Uint8Array): string {
  return pythonUtf8Decode(bytes).replace(/\r\n?/g, '\n');
}

/**
 * The first sequence CPython's UTF-8 decoder rejects, as it reports it: the lead byte and the
 * continuation bytes accepted before the failure.
 */
function firstInvalid(b: Uint8Array): { start: number; end: number; reason: string } | undefined {
  for (let i = 0; i < b.length; ) {
    const lead = b[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    if (lead < 0xc2 || lead > 0xf4) return { start: i, end: i + 1, reason: 'invalid start byte' };
    const need = lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
    // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
    const [lo, hi] =
      lead === 0xe0
        ? [0xa0, 0xbf]
        : lead === 0xed
          ? [0x80, 0x9f]
          : lead === 0xf0
            ? [0x90, 0xbf]
            : lead === 0xf4
              ? [0x80, 0x8f]
              : [0x80, 0xbf];
    for (let k = 1; k < need; k++) {
      if (i + k >= b.length) return { start: i, end: b.length, reason: 'unexpected end of data' };
      const c = b[i + k]!;
      const ok = k === 1 ? c >= lo && c <= hi : c >= 0x80 && c <= 0xbf;
      if (!ok) return { start: i, end: i + k, reason: 'invalid continuation byte' };
    }
    i += need;
  }
  return undefined;
}
