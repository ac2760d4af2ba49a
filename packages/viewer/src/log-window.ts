import type { LogLine } from './log-lines.js';

/**
 * The contiguous run of lines the page holds: a window onto a log of any size. It grows as the
 * reader scrolls and is cut on the side away from the reader, so the page's memory stays near
 * `maxBytes` of text whatever the log's size.
 *
 * Line numbers are known only for lines counted from byte 0: a window opened elsewhere (a jump,
 * the end of a 1 GiB log) shows byte offsets, unless it meets a line whose number was seen before
 * (`checkpoints`).
 */
export class LogWindow {
  lines: LogLine[] = [];
  /** Bytes of the log the page knows of: the whole log once complete, else what was seen. */
  size = 0;
  complete = true;
  /** Bumped whenever the lines are replaced, so a late read for the old window is dropped. */
  generation = 0;
  /** Where an empty window sits. */
  #base = 0;
  /** Line numbers seen, by line offset, one in every 256 lines: a later window reuses them. */
  readonly #checkpoints = new Map<number, number>();

  constructor(readonly maxBytes = 2 * 1024 * 1024) {}

  get start(): number {
    return this.lines[0]?.offset ?? this.#base;
  }

  get end(): number {
    return this.lines.at(-1)?.end ?? this.#base;
  }

  /** Whether the held lines reach the end of what is known of the log. */
  get atLogEnd(): boolean {
    return this.end >= this.size;
  }

  replace(lines: LogLine[], base: number): void {
    this.generation++;
    this.lines = lines;
    this.#base = base;
    const first = lines[0];
    if (first && first.offset === 0) this.#numberFrom(0, 1);
    else {
      const known = lines.findIndex((l) => this.#checkpoints.has(l.offset));
      if (known !== -1) this.#numberFrom(known, this.#checkpoints.get(lines[known]!.offset)!);
    }
  }

  append(more: LogLine[]): void {
    if (more.length === 0) return;
    const from = this.lines.length;
    if (from === 0) {
      this.replace(more, more[0]!.offset);
      return;
    }
    this.lines.push(...more);
    const prev = this.lines[from - 1]!;
    if (prev.no !== undefined) this.#numberFrom(from - 1, prev.no);
  }

  prepend(more: LogLine[]): number {
    if (more.length === 0) return 0;
    const first = this.lines[0];
    this.lines = [...more, ...this.lines];
    if (more[0]!.offset === 0) this.#numberFrom(0, 1);
    else if (first?.no !== undefined) {
      // Count back from the first numbered line; pieces of one long line share its number.
      let no = first.no;
      for (let i = more.length - 1; i >= 0; i--) {
        if (!this.lines[i + 1]!.openStart) no--;
        this.lines[i]!.no = no;
      }
    }
    return more.length;
  }

  /** Numbers lines from index `i` (whose number is `no`) to the end. */
  #numberFrom(i: number, no: number): void {
    let n = no;
    for (let k = i; k < this.lines.length; k++) {
      const line = this.lines[k]!;
      if (k > i && !line.openStart) n++;
      line.no = n;
      if (n % 256 === 0 && !line.openStart && this.#checkpoints.size < 100_000) {
        this.#checkpoints.set(line.offset, n);
      }
    }
  }

  /** Index of the line holding byte `offset`, or -1 when the window does not hold it. */
  indexAt(offset: number): number {
    const L = this.lines;
    if (L.length === 0 || offset < L[0]!.offset || offset >= L.at(-1)!.end) return -1;
    let lo = 0;
    let hi = L.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (L[mid]!.offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Cuts the window back to three quarters of `maxBytes`, from the side away from the line at
   * `anchor`, keeping `keep` lines around it; returns how many lines went from the front.
   */
  trim(anchor: number, keep = 400): number {
    if (this.end - this.start <= this.maxBytes) return 0;
    const target = this.maxBytes * 0.75;
    const L = this.lines;
    if (anchor > L.length / 2) {
      let k = 0;
      while (k < anchor - keep && this.end - L[k]!.offset > target) k++;
      // Never start the window on a piece: the next read backwards expects a line start.
      while (k > 0 && L[k]!.openStart) k--;
      this.lines = L.slice(k);
      return k;
    }
    let k = L.length;
    while (k > anchor + keep && L[k - 1]!.end - this.start > target) k--;
    while (k < L.length && L[k - 1]!.openEnd) k++;
    this.lines = L.slice(0, k);
    return 0;
  }
}
