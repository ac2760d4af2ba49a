/**
 * What a blob-store writer (local folder, S3, GCS) has accepted but not stored yet, and where its
 * next chunk ends.
 *
 * - `flush()` stores every byte (`next('all')`): the contract makes each appended byte durable.
 * - A flush the writer makes by itself because the buffer is full (`next('lines')`) ends at the
 *   last `\n` and keeps the unfinished line buffered, so chunks, read on their own by outside
 *   tools, hold whole lines. A buffer without any `\n` (one line longer than the flush size) is
 *   cut at its end, but never inside a UTF-8 character.
 * - A cut that was handed out and not `commit`ted (its upload failed) is handed out again, byte
 *   for byte, before anything else: a retried chunk is the same object as the failed try, which
 *   may have been stored after all (GCS refuses a different one at the same name).
 */
/**
 * Buffered bytes at which a blob writer stores a chunk by itself: the default of
 * `store.flush_bytes` and of every blob store's `flushBytes`, declared here once.
 */
export const DEFAULT_FLUSH_BYTES = 8 * 1024 * 1024;

export class ChunkBuffer {
  #pieces: Buffer[] = [];
  #size = 0;
  /** Length of the last cut handed out and not committed; 0 when none. */
  #pending = 0;

  /** Bytes buffered. */
  get size(): number {
    return this.#size;
  }

  /** Takes `bytes` (the caller keeps no reference to them). */
  push(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#pieces.push(bytes);
    this.#size += bytes.length;
  }

  /** The bytes of the next chunk, from the front of the buffer; empty when there is nothing to cut. */
  next(mode: 'all' | 'lines'): Buffer {
    const whole = this.#whole();
    let cut: number;
    if (this.#pending > 0 && this.#pending <= whole.length) cut = this.#pending;
    else if (mode === 'all') cut = whole.length;
    else {
      const newline = whole.lastIndexOf(0x0a);
      cut = newline >= 0 ? newline + 1 : completeCharacters(whole);
    }
    this.#pending = cut;
    return whole.subarray(0, cut);
  }

  /** Drops the first `n` bytes, now stored. */
  commit(n: number): void {
    const whole = this.#whole();
    // The rest is copied, so the stored chunk's memory is released at once.
    this.#pieces = n < whole.length ? [Buffer.from(whole.subarray(n))] : [];
    this.#size = whole.length - Math.min(n, whole.length);
    this.#pending = 0;
  }

  clear(): void {
    this.#pieces = [];
    this.#size = 0;
    this.#pending = 0;
  }

  #whole(): Buffer {
    if (this.#pieces.length > 1) this.#pieces = [Buffer.concat(this.#pieces)];
    return this.#pieces[0] ?? Buffer.alloc(0);
  }
}

/**
 * Length of `bytes` without a trailing UTF-8 character whose last bytes have not arrived yet.
 * Bytes that are not UTF-8 at all are cut anywhere: there is no character to keep whole.
 */
export function completeCharacters(bytes: Buffer): number {
  for (let back = 1; back <= 4 && back <= bytes.length; back++) {
    const b = bytes[bytes.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: its lead byte is further back
    const need = b >= 0xf8 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? bytes.length - back : bytes.length;
  }
  return bytes.length;
}
