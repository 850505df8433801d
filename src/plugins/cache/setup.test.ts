import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCorefile } from '../../corefile/parser.ts';
import { CorefileError } from '../../corefile/errors.ts';
import { defaultServerConfig, type EngineHooks, type SetupContext } from '../../plugin.ts';
import { cacheSetup, parseCacheDirective } from './setup.ts';
import { defaultCacheConfig, effectiveCapacity, type CacheConfig } from './config.ts';
import { CachePlugin } from './cache.ts';

function directive(body: string) {
  const blocks = parseCorefile(`cluster.local:53 {\n${body}\n}\n`, 'Corefile', {});
  const d = blocks[0]!.directives.find((x) => x.name === 'cache');
  assert.ok(d, 'cache directive present');
  return d;
}

function parse(body: string): CacheConfig {
  return parseCacheDirective(directive(body), ['cluster.local.']);
}

function expected(patch: (c: CacheConfig) => void): CacheConfig {
  const c = defaultCacheConfig(['cluster.local.']);
  patch(c);
  return c;
}

const valid: Array<[string, (c: CacheConfig) => void]> = [
  ['cache', () => {}],
  [
    'cache 30',
    (c) => {
      c.success.maxTtlSec = 30;
      c.denial.maxTtlSec = 30;
    },
  ],
  [
    'cache 30 example.org',
    (c) => {
      c.success.maxTtlSec = 30;
      c.denial.maxTtlSec = 30;
      c.zones = ['example.org.'];
    },
  ],
  [
    'cache Example.ORG in-addr.arpa',
    (c) => {
      c.zones = ['example.org.', 'in-addr.arpa.'];
    },
  ],
  [
    'cache 10.0.0.0/8',
    (c) => {
      c.zones = ['10.in-addr.arpa.'];
    },
  ],
  [
    'cache {\n success 9984 30\n denial 9984 5\n}',
    (c) => {
      c.success = { capacity: 9984, maxTtlSec: 30, minTtlSec: 5 };
      c.denial = { capacity: 9984, maxTtlSec: 5, minTtlSec: 5 };
    },
  ],
  [
    'cache { success 5000 }',
    (c) => {
      c.success.capacity = 5000;
    },
  ],
  [
    'cache { success 5000 60 0 }',
    (c) => {
      c.success = { capacity: 5000, maxTtlSec: 60, minTtlSec: 0 };
    },
  ],
  [
    'cache { denial 2500 120 10 }',
    (c) => {
      c.denial = { capacity: 2500, maxTtlSec: 120, minTtlSec: 10 };
    },
  ],
  [
    'cache { prefetch 10 }',
    (c) => {
      c.prefetchAmount = 10;
    },
  ],
  [
    'cache { prefetch 10 30s }',
    (c) => {
      c.prefetchAmount = 10;
      c.prefetchWindowMs = 30_000;
    },
  ],
  [
    'cache { prefetch 2 1m30s 50% }',
    (c) => {
      c.prefetchAmount = 2;
      c.prefetchWindowMs = 90_000;
      c.prefetchPercentage = 50;
    },
  ],
  [
    'cache { serve_stale }',
    (c) => {
      c.staleUpToMs = 3_600_000;
    },
  ],
  [
    'cache { serve_stale 10m }',
    (c) => {
      c.staleUpToMs = 600_000;
    },
  ],
  [
    'cache { serve_stale 10m verify }',
    (c) => {
      c.staleUpToMs = 600_000;
      c.staleVerify = true;
    },
  ],
  [
    'cache { serve_stale 1h IMMEDIATE }',
    (c) => {
      c.staleUpToMs = 3_600_000;
    },
  ],
  [
    'cache { servfail 0 }',
    (c) => {
      c.servfailMs = 0;
    },
  ],
  [
    'cache { servfail 5m }',
    (c) => {
      c.servfailMs = 300_000;
    },
  ],
  [
    'cache { disable success }',
    (c) => {
      c.disableSuccess = ['.'];
    },
  ],
  [
    'cache { disable denial Example.com sub.test }',
    (c) => {
      c.disableDenial = ['example.com.', 'sub.test.'];
    },
  ],
  [
    'cache { keepttl }',
    (c) => {
      c.keepTtl = true;
    },
  ],
];

for (const [body, patch] of valid) {
  test(`parses: ${body.replace(/\n/g, ' ')}`, () => {
    assert.deepEqual(parse(body), expected(patch));
  });
}

const invalid: Array<[string, string]> = [
  ['cache 0', 'Corefile:2 - Error during parsing: cache TTL can not be zero or negative: 0'],
  ['cache -5', 'Corefile:2 - Error during parsing: cache TTL can not be zero or negative: -5'],
  ['cache {\n success\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'success'"],
  ['cache {\n success abc\n}', 'Corefile:3 - Error during parsing: strconv.Atoi: parsing "abc": invalid syntax'],
  ['cache {\n success 100 0\n}', 'Corefile:3 - Error during parsing: cache TTL can not be zero or negative: 0'],
  ['cache {\n success 100 30 -1\n}', 'Corefile:3 - Error during parsing: cache min TTL can not be negative: -1'],
  ['cache {\n denial 100 x\n}', 'Corefile:3 - Error during parsing: strconv.Atoi: parsing "x": invalid syntax'],
  ['cache {\n denial 99999999999999999999\n}', 'Corefile:3 - Error during parsing: strconv.Atoi: parsing "99999999999999999999": value out of range'],
  ['cache {\n prefetch\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'prefetch'"],
  ['cache {\n prefetch 1 1m 10% extra\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'"],
  ['cache {\n prefetch -1\n}', 'Corefile:3 - Error during parsing: prefetch amount should be positive: -1'],
  ['cache {\n prefetch 1 soon\n}', 'Corefile:3 - Error during parsing: time: invalid duration "soon"'],
  ['cache {\n prefetch 1 10\n}', 'Corefile:3 - Error during parsing: time: missing unit in duration "10"'],
  ['cache {\n prefetch 1 1m 50\n}', "Corefile:3 - Error during parsing: last character of percentage should be `%`, but is: '0'"],
  ['cache {\n prefetch 1 1m 5%\n}', 'Corefile:3 - Error during parsing: percentage should fall in range [10, 90]: 5'],
  ['cache {\n prefetch 1 1m 95%\n}', 'Corefile:3 - Error during parsing: percentage should fall in range [10, 90]: 95'],
  ['cache {\n prefetch 1 1m x%\n}', 'Corefile:3 - Error during parsing: strconv.Atoi: parsing "x": invalid syntax'],
  ['cache {\n serve_stale 1h verify now\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'now'"],
  ['cache {\n serve_stale -1h\n}', 'Corefile:3 - Error during parsing: invalid negative duration for serve_stale'],
  ['cache {\n serve_stale 1h later\n}', 'Corefile:3 - Error during parsing: invalid value for serve_stale refresh mode: later'],
  ['cache {\n serve_stale 1h Verified\n}', 'Corefile:3 - Error during parsing: invalid value for serve_stale refresh mode: verified'],
  ['cache {\n servfail\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'servfail'"],
  ['cache {\n servfail 1s 2s\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after '2s'"],
  ['cache {\n servfail -1s\n}', 'Corefile:3 - Error during parsing: invalid negative ttl for servfail'],
  ['cache {\n servfail 6m\n}', 'Corefile:3 - Error during parsing: caching SERVFAIL responses over 5 minutes is not permitted'],
  ['cache {\n disable\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'disable'"],
  ['cache {\n disable all\n}', 'Corefile:3 - Error during parsing: cache type for disable must be "success" or "denial"'],
  ['cache {\n keepttl yes\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'yes'"],
  ['cache {\n bogus 1\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'bogus'"],
];

for (const [body, message] of invalid) {
  test(`rejects: ${body.replace(/\n/g, ' ')}`, () => {
    assert.throws(
      () => parse(body),
      (err: unknown) => err instanceof CorefileError && err.message === message,
    );
  });
}

test('effective capacity follows CoreDNS shards: multiple of 256, at least 1024', () => {
  assert.equal(effectiveCapacity(10000), 9984);
  assert.equal(effectiveCapacity(9984), 9984);
  assert.equal(effectiveCapacity(5000), 4864);
  assert.equal(effectiveCapacity(100), 1024);
  assert.equal(effectiveCapacity(-3), 1024);
});

test('cacheSetup builds a CachePlugin over the block zones with the context clock', () => {
  let now = 5;
  const ctx: SetupContext = {
    zones: ['cluster.local.'],
    port: 53,
    serverLabels: ['dns://169.254.20.10:53'],
    server: defaultServerConfig(['169.254.20.10']),
    blockIndex: 0,
    file: 'Corefile',
    shared: new Map(),
    env: {},
    clock: () => now++,
    log: { info() {}, warn() {}, error() {} },
    // The cache does not control the engine: any use fails the test.
    engine: new Proxy({} as EngineHooks, {
      get(_t, prop) {
        throw new Error(`cache setup used engine.${String(prop)}`);
      },
    }),
  };
  const p = cacheSetup.setup(directive('cache {\n success 9984 30\n denial 9984 5\n}'), ctx);
  assert.equal(p.name, 'cache');
  assert.ok(p instanceof CachePlugin);
  assert.deepEqual(p.config.zones, ['cluster.local.']);
  assert.equal(p.capacity('success'), 9984);
  assert.equal(p.capacity('denial'), 9984);
});
