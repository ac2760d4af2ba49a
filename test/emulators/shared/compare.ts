/** The ordering comparisons the emulators' filter languages share. */
export type Comparison = '=' | '!=' | '<' | '<=' | '>' | '>=';

/** `a OP b` for two values of one ordered kind (numbers, bigints or strings). */
export function compareOrdered<T extends number | bigint | string>(
  a: T,
  op: Comparison,
  b: T,
): boolean {
  switch (op) {
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
  }
}
