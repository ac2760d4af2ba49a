import { Transform } from 'node:stream';
import { urlPasswords } from './redact.js';

/**
 * Environment variables whose NAME contains one of these (case-insensitively) hold secrets:
 * Airflow's `DEFAULT_SENSITIVE_FIELDS` (`airflow/utils/log/secrets_masker.py`), to which
 * `core.sensitive_names` adds more.
 */
export const DEFAULT_SENSITIVE_NAMES: readonly string[] = Object.freeze([
  'access_token',
  'api_key',
  'apikey',
  'authorization',
  'passphrase',
  'passwd',
  'password',
  'private_key',
  'secret',
  'token',
  'keyfile_dict',
  'service_account',
]);

/**
 * Secrets shorter than this many characters are not masked. Airflow's rule (`add_mask`:
 * `if len(secret) < min_length: return`, `[logging] min_length_masked_secret`, default 5): a
 * password of `a` would otherwise turn every `a` in the log into `***`. Characters are counted
 * as Unicode code points, like Python's `len`.
 */
export const MIN_SECRET_LENGTH = 5;

/** Whether a variable or field name is sensitive: it contains one of `names`, case-insensitively. */
export function isSensitiveName(names: readonly string[]): (name: string) => boolean {
  const lowered = names.map((n) => n.toLowerCase());
  return (name) => {
    const lower = name.toLowerCase();
    return lowered.some((n) => lower.includes(n));
  };
}

/** Airflow's `SECRETS_TO_SKIP_MASKING`: common words that are never treated as secrets. */
const SKIPPED_SECRETS = new Set(['airflow']);

const REPLACEMENT = Buffer.from('***');

/** Options of `SecretMasker`. */
export interface SecretMaskerOptions {
  /** Secrets with fewer code points are ignored. Default MIN_SECRET_LENGTH (5). */
  minLength?: number;
}

/**
 * Replaces registered secret values with `***`. Matching is on the UTF-8 bytes of each secret,
 * leftmost first and, of the secrets starting at one position, the longest — the same result as
 * Airflow's regex of escaped secrets tried longest first.
 */
export class SecretMasker {
  private readonly minLength: number;
  private readonly values = new Set<string>();
  /** Longest first, so the first secret matching at a position is the longest one there. */
  private patterns: Buffer[] = [];

  constructor(options: SecretMaskerOptions = {}) {
    this.minLength = options.minLength ?? MIN_SECRET_LENGTH;
  }

  /**
   * A masker holding the values of every variable in `env` whose name contains one of `names`
   * (case-insensitive).
   */
  static fromEnv(
    env: NodeJS.ProcessEnv,
    names: readonly string[] = DEFAULT_SENSITIVE_NAMES,
    options?: SecretMaskerOptions,
  ): SecretMasker {
    const masker = new SecretMasker(options);
    const sensitive = isSensitiveName(names);
    for (const [name, value] of Object.entries(env)) {
      if (value === undefined) continue;
      if (sensitive(name)) masker.add(value);
      // Whatever the name: passwords in URLs (Airflow connection URIs in AIRFLOW_CONN_*, a
      // DATABASE_URL …) and the sensitive fields of Airflow's JSON connections.
      for (const password of urlPasswords(value)) masker.add(password);
      if (/^AIRFLOW_CONN_/i.test(name) && value.trimStart().startsWith('{')) {
        masker.addSensitiveFields(value, sensitive);
      }
    }
    return masker;
  }

  /** Registers the values of sensitive fields in a JSON document (an Airflow connection), deeply. */
  addSensitiveFields(json: string, sensitive: (name: string) => boolean): void {
    let doc: unknown;
    try {
      doc = JSON.parse(json);
    } catch {
      return;
    }
    const visit = (node: unknown, name: string, depth: number): void => {
      if (depth > 20) return;
      if (typeof node === 'string') {
        if (sensitive(name)) this.add(node);
        for (const password of urlPasswords(node)) this.add(password);
        // `extra` is often a JSON document of its own.
        if (node.trimStart().startsWith('{')) this.addSensitiveFields(node, sensitive);
      } else if (Array.isArray(node)) {
        for (const item of node) visit(item, name, depth + 1);
      } else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (sensitive(k) && v && typeof v === 'object') this.add(JSON.stringify(v));
          visit(v, k, depth + 1);
        }
      }
    };
    visit(doc, '', 0);
  }

  /** Registers a secret; returns false when it is too short (or a skipped word) to be masked. */
  add(value: string): boolean {
    if ([...value].length < this.minLength || SKIPPED_SECRETS.has(value.toLowerCase())) {
      return false;
    }
    if (this.values.has(value)) return true;
    this.values.add(value);
    this.patterns = [...this.patterns, Buffer.from(value, 'utf8')].sort(
      (a, b) => b.length - a.length,
    );
    return true;
  }

  /** Number of registered secrets. */
  get size(): number {
    return this.values.size;
  }

  /** Byte length of the longest secret (0 when there is none). */
  get longestSecretBytes(): number {
    return this.patterns[0]?.length ?? 0;
  }

  /** Masks a complete byte sequence at once. */
  mask(input: Uint8Array | string): Buffer {
    const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input);
    return this.maskUpTo(buf, buf.length).output;
  }

  /** A stateful masker for a byte stream cut into arbitrary chunks. */
  stream(): MaskingStream {
    return new MaskingStream(this);
  }

  /** A Node transform stream over `stream()`. */
  transform(): Transform {
    const state = this.stream();
    return new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const out = state.push(chunk);
        done(null, out.length ? out : undefined);
      },
      flush(done) {
        const out = state.end();
        done(null, out.length ? out : undefined);
      },
    });
  }

  /**
   * Masks every match starting before `decidable` and returns the output plus the index where
   * undecided input begins. A match starting at or after `decidable` might still grow into a
   * longer secret (or only complete) with bytes not seen yet, so it is left alone.
   */
  maskUpTo(buf: Buffer, decidable: number): { output: Buffer; rest: number } {
    const patterns = this.patterns;
    if (patterns.length === 0) return { output: buf.subarray(0, decidable), rest: decidable };
    const parts: Buffer[] = [];
    // next[i]: where patterns[i] next occurs at or after the scan position (-1: nowhere).
    const next = patterns.map((p) => buf.indexOf(p));
    let pos = 0;
    for (;;) {
      let best = -1;
      for (let i = 0; i < patterns.length; i++) {
        if (next[i]! >= 0 && next[i]! < pos) next[i] = buf.indexOf(patterns[i]!, pos);
        // Strict `<` keeps the earlier (longer) pattern on a tie.
        if (next[i]! >= 0 && (best < 0 || next[i]! < next[best]!)) best = i;
      }
      if (best < 0 || next[best]! >= decidable) break;
      const at = next[best]!;
      parts.push(buf.subarray(pos, at), REPLACEMENT);
      pos = at + patterns[best]!.length;
    }
    const rest = Math.max(pos, decidable);
    parts.push(buf.subarray(pos, rest));
    return { output: Buffer.concat(parts), rest };
  }
}

/**
 * Streaming state of a SecretMasker: a secret split across chunks is still masked. Of each chunk
 * at most (longest secret − 1) bytes at its end are held back — the only bytes whose fate can
 * depend on what comes next — and released by the next push or by end().
 */
export class MaskingStream {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly masker: SecretMasker) {}

  /** Bytes held back, waiting for the next chunk. */
  get heldBack(): number {
    return this.pending.length;
  }

  /** Masks `chunk` and returns every byte that can already be released. */
  push(chunk: Uint8Array | string): Buffer {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const buf = this.pending.length ? Buffer.concat([this.pending, bytes]) : Buffer.from(bytes);
    const longest = this.masker.longestSecretBytes;
    // A match starting at s is certain once buf holds s + longest bytes: no secret is longer.
    const decidable = longest === 0 ? buf.length : Math.max(0, buf.length - longest + 1);
    const { output, rest } = this.masker.maskUpTo(buf, decidable);
    // Copied, so the held-back bytes do not pin the caller's whole chunk in memory.
    this.pending = Buffer.from(buf.subarray(rest));
    return output;
  }

  /** Masks and releases everything held back; the stream may be reused afterwards. */
  end(): Buffer {
    const buf = this.pending;
    this.pending = Buffer.alloc(0);
    return this.masker.maskUpTo(buf, buf.length).output;
  }
}
