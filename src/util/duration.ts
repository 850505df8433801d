/**
 * Go's time.Duration text form, as the Corefile uses it (`cache ... { prefetch 10 1m }`,
 * `health { lameduck 5s }`, `forward ... { expire 10s }`).
 *
 * parseGoDurationMs follows time.ParseDuration exactly: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with
 * units ns, us, µs (U+00B5), μs (U+03BC), ms, s, m, h; "0" needs no unit; the value is an int64
 * count of nanoseconds (fractions truncated the way Go does, overflow is an error).
 */

const DurationErrorCode = 'ERR_DURATION' as const;

export class DurationError extends Error {
  readonly code = DurationErrorCode;
  /** The text that failed to parse. */
  readonly input: string;
  constructor(message: string, input: string) {
    super(message);
    this.name = 'DurationError';
    this.input = input;
  }
}

const NS_PER_UNIT: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5 micro sign
  μs: 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const INT64_LIMIT = 1n << 63n;

/**
 * The time package's quote(): ASCII printable characters as is (`"` and `\\` escaped), every
 * other character as the `\xNN` escapes of its UTF-8 bytes.
 */
function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0x80 || cp < 0x20) {
      for (const b of Buffer.from(ch, 'utf8')) out += '\\x' + b.toString(16).padStart(2, '0');
    } else {
      out += ch === '"' || ch === '\\' ? '\\' + ch : ch;
    }
  }
  return out + '"';
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/**
 * Parses a Go duration and returns its value in nanoseconds as a BigInt (exact).
 * @throws DurationError with Go's message (`time: invalid duration "x"`, ...).
 */
export function parseGoDurationNs(input: string): bigint {
  const invalid = (): never => {
    throw new DurationError(`time: invalid duration ${quote(input)}`, input);
  };
  let s = input;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') invalid();

  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || isDigit(s[0]))) invalid();

    // [0-9]*  (Go: leadingInt, an overflow past 1<<63 is an invalid duration)
    let i = 0;
    let v = 0n;
    while (isDigit(s[i])) {
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > INT64_LIMIT) invalid();
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);

    // (\.[0-9]*)?  (Go: leadingFraction, digits past int64 precision are consumed, not counted)
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === '.') {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (isDigit(s[j])) {
        if (!overflow) {
          const next = f * 10n + BigInt(s.charCodeAt(j) - 48);
          if (next > INT64_LIMIT) overflow = true;
          else {
            f = next;
            scale *= 10;
          }
        }
        j++;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) invalid();

    // unit: everything up to the next '.' or digit
    let u = 0;
    while (u < s.length && s[u] !== '.' && !isDigit(s[u])) u++;
    if (u === 0) throw new DurationError(`time: missing unit in duration ${quote(input)}`, input);
    const unitText = s.slice(0, u);
    s = s.slice(u);
    const unit = NS_PER_UNIT[unitText];
    if (unit === undefined) {
      throw new DurationError(`time: unknown unit ${quote(unitText)} in duration ${quote(input)}`, input);
    }
    if (v > INT64_LIMIT / unit) invalid();
    v *= unit;
    if (f > 0n) {
      // Go: v += uint64(float64(f) * (float64(unit) / scale)), a float64 computation.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > INT64_LIMIT) invalid();
    }
    total += v;
    if (total > INT64_LIMIT) invalid();
  }
  if (neg) return -total;
  if (total > INT64_LIMIT - 1n) invalid();
  return total;
}

/**
 * Parses a Go duration (`30s`, `1m30s`, `1.5h`, `500ms`, `-2h`, `0`) into milliseconds, as a
 * float (nanosecond precision kept: `1ns` → 1e-6).
 * @throws DurationError on text time.ParseDuration rejects.
 */
export function parseGoDurationMs(s: string): number {
  return Number(parseGoDurationNs(s)) / 1e6;
}

/** Go's fmtFrac: the fraction digits of v / 10^prec without trailing zeros, and v / 10^prec. */
function fmtFrac(v: bigint, prec: number): [string, bigint] {
  let digits = '';
  let printed = false;
  for (let i = 0; i < prec; i++) {
    const digit = v % 10n;
    printed = printed || digit !== 0n;
    if (printed) digits = digit.toString() + digits;
    v /= 10n;
  }
  return [printed ? '.' + digits : '', v];
}

/** Formats nanoseconds as Go's Duration.String() does. */
export function formatGoDurationNs(ns: bigint): string {
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    if (u === 0n) return '0s';
    if (u < 1_000n) out = `${u}ns`;
    else if (u < 1_000_000n) {
      const [frac, whole] = fmtFrac(u, 3);
      out = `${whole}${frac}µs`;
    } else {
      const [frac, whole] = fmtFrac(u, 6);
      out = `${whole}${frac}ms`;
    }
  } else {
    const [frac, secs] = fmtFrac(u, 9);
    u = secs;
    out = `${u % 60n}${frac}s`;
    u /= 60n;
    if (u > 0n) {
      out = `${u % 60n}m` + out;
      u /= 60n;
      if (u > 0n) out = `${u}h` + out;
    }
  }
  return neg ? '-' + out : out;
}

/**
 * Formats milliseconds as Go's Duration.String(): `30s`, `1m30s`, `500ms`, `1h0m0s`, `1.5µs`.
 * The value is first rounded to whole nanoseconds.
 */
export function formatGoDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`not a finite duration: ${ms}`);
  return formatGoDurationNs(BigInt(Math.round(ms * 1e6)));
}
