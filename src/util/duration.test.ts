import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DurationError, formatGoDuration, formatGoDurationNs, parseGoDurationMs, parseGoDurationNs } from './duration.ts';

const NS = 1n;
const US = 1_000n;
const MS = 1_000_000n;
const S = 1_000_000_000n;
const M = 60n * S;
const H = 60n * M;
const MAX = (1n << 63n) - 1n;
const MIN = -(1n << 63n);

test('parseGoDurationNs: the valid cases of Go time.ParseDuration', () => {
  const cases: Array<[string, bigint]> = [
    ['0', 0n],
    ['5s', 5n * S],
    ['30s', 30n * S],
    ['1478s', 1478n * S],
    ['-5s', -5n * S],
    ['+5s', 5n * S],
    ['-0', 0n],
    ['+0', 0n],
    ['5.0s', 5n * S],
    ['5.6s', 5n * S + 600n * MS],
    ['5.s', 5n * S],
    ['.5s', 500n * MS],
    ['1.0s', S],
    ['1.00s', S],
    ['1.004s', S + 4n * MS],
    ['1.0040s', S + 4n * MS],
    ['100.00100s', 100n * S + MS],
    ['10ns', 10n * NS],
    ['11us', 11n * US],
    ['12µs', 12n * US], // U+00B5
    ['12μs', 12n * US], // U+03BC
    ['13ms', 13n * MS],
    ['14s', 14n * S],
    ['15m', 15n * M],
    ['16h', 16n * H],
    ['3h30m', 3n * H + 30n * M],
    ['10.5s4m', 4n * M + 10n * S + 500n * MS],
    ['-2m3.4s', -(2n * M + 3n * S + 400n * MS)],
    ['1h2m3s4ms5us6ns', H + 2n * M + 3n * S + 4n * MS + 5n * US + 6n * NS],
    ['39h9m14.425s', 39n * H + 9n * M + 14n * S + 425n * MS],
    ['52763797000ns', 52763797000n],
    ['0.3333333333333333333h', 20n * M],
    ['9007199254740993ns', (1n << 53n) + 1n],
    ['9223372036854775807ns', MAX],
    ['9223372036854775.807us', MAX],
    ['9223372036s854ms775us807ns', MAX],
    ['-9223372036854775808ns', MIN],
    ['-9223372036854775.808us', MIN],
    ['-9223372036s854ms775us808ns', MIN],
    ['-2562047h47m16.854775808s', MIN],
    ['0.100000000000000000000h', 6n * M],
    ['0.830103483285477580700h', 49n * M + 48n * S + 372539827n],
  ];
  for (const [input, expected] of cases) assert.equal(parseGoDurationNs(input), expected, input);
});

test('parseGoDurationNs: the invalid cases of Go time.ParseDuration, with Go messages', () => {
  const cases: Array<[string, string]> = [
    ['', 'time: invalid duration ""'],
    ['3', 'time: missing unit in duration "3"'],
    ['-', 'time: invalid duration "-"'],
    ['s', 'time: invalid duration "s"'],
    ['.', 'time: invalid duration "."'],
    ['-.', 'time: invalid duration "-."'],
    ['.s', 'time: invalid duration ".s"'],
    ['+.s', 'time: invalid duration "+.s"'],
    ['1d', 'time: unknown unit "d" in duration "1d"'],
    ['00', 'time: missing unit in duration "00"'],
    ['1h 30m', 'time: unknown unit "h " in duration "1h 30m"'],
    ['1.5.5s', 'time: missing unit in duration "1.5.5s"'],
    ['\x85\x85', 'time: invalid duration "\\xc2\\x85\\xc2\\x85"'],
    ['5é', 'time: unknown unit "\\xc3\\xa9" in duration "5\\xc3\\xa9"'],
    ['9223372036854775810ns', 'time: invalid duration "9223372036854775810ns"'],
    ['9223372036854775808ns', 'time: invalid duration "9223372036854775808ns"'],
    ['-9223372036854775809ns', 'time: invalid duration "-9223372036854775809ns"'],
    ['9223372036854776us', 'time: invalid duration "9223372036854776us"'],
    ['3000000h', 'time: invalid duration "3000000h"'],
    ['9223372036854775.808us', 'time: invalid duration "9223372036854775.808us"'],
    ['9223372036854ms775us808ns', 'time: invalid duration "9223372036854ms775us808ns"'],
  ];
  for (const [input, message] of cases) {
    assert.throws(
      () => parseGoDurationNs(input),
      (err: unknown) => err instanceof DurationError && err.code === 'ERR_DURATION' && err.message === message && err.input === input,
      JSON.stringify(input),
    );
  }
});

test('parseGoDurationMs: milliseconds as a float', () => {
  const cases: Array<[string, number]> = [
    ['0', 0],
    ['30s', 30_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1.5h', 5_400_000],
    ['-2s', -2_000],
    ['1ns', 1e-6],
    ['1500us', 1.5],
    ['10µs', 0.01],
  ];
  for (const [input, expected] of cases) assert.equal(parseGoDurationMs(input), expected, input);
  assert.throws(() => parseGoDurationMs('10'), DurationError);
});

test('formatGoDurationNs: the cases of Go Duration.String', () => {
  const cases: Array<[bigint, string]> = [
    [0n, '0s'],
    [1n, '1ns'],
    [1100n, '1.1µs'],
    [2200n * US, '2.2ms'],
    [3300n * MS, '3.3s'],
    [4n * M + 5n * S, '4m5s'],
    [4n * M + 5001n * MS, '4m5.001s'],
    [5n * H + 6n * M + 7001n * MS, '5h6m7.001s'],
    [8n * M + 1n, '8m0.000000001s'],
    [MAX, '2562047h47m16.854775807s'],
    [MIN, '-2562047h47m16.854775808s'],
    [-1n, '-1ns'],
    [999n, '999ns'],
    [1000n, '1µs'],
    [H, '1h0m0s'],
  ];
  for (const [ns, expected] of cases) assert.equal(formatGoDurationNs(ns), expected, String(ns));
});

test('formatGoDuration: from milliseconds, round trip with parse', () => {
  const cases: Array<[number, string]> = [
    [30_000, '30s'],
    [90_000, '1m30s'],
    [500, '500ms'],
    [3_600_000, '1h0m0s'],
    [0, '0s'],
    [1.5, '1.5ms'],
    [0.0015, '1.5µs'],
    [-5000, '-5s'],
  ];
  for (const [ms, expected] of cases) {
    assert.equal(formatGoDuration(ms), expected, String(ms));
    assert.equal(parseGoDurationMs(expected), ms, `round trip ${expected}`);
  }
  assert.throws(() => formatGoDuration(Number.NaN), RangeError);
});
