import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { CorefileError } from '../../corefile/errors.ts';
import { ForwardPlugin, type ForwardSettings } from './forward.ts';
import { forwardSetup, normalizeExact, parseForward } from './setup.ts';
import { CaptureLogger, forwardDirective, setupContext } from '../../../test/lib/forward-testing.ts';
import { parseResolvConf } from './resolvconf.ts';

const FIX = path.join(import.meta.dirname, 'testdata');
const RESOLV = path.join(FIX, 'resolv.conf');
const EMPTY = path.join(FIX, 'no-nameservers.conf');
const HOSTNAME = path.join(FIX, 'hostname.conf');

function parse(body: string, log = new CaptureLogger()): ForwardSettings {
  return parseForward(forwardDirective(body), { log });
}

const DEFAULTS = {
  ignored: [],
  forceTcp: false,
  preferUdp: false,
  expireMs: 10_000,
  maxFails: 2,
  healthCheckMs: 500,
  hcRecursionDesired: true,
  hcDomain: '.',
  policy: 'random',
  maxConcurrent: null,
};

const up = (host: string, port: number, family: 4 | 6 = 4) => ({ host, port, family, to: family === 6 ? `[${host}]:${port}` : `${host}:${port}` });

const VALID: [string, Partial<ForwardSettings>][] = [
  ['forward . 127.0.0.1', { from: '.', upstreams: [up('127.0.0.1', 53)] }],
  [
    'forward . 127.0.0.1:5353 dns://127.0.0.2 dns://127.0.0.3:54 [::1]:53 ::1 [fd00::1]:1053',
    {
      from: '.',
      upstreams: [up('127.0.0.1', 5353), up('127.0.0.2', 53), up('127.0.0.3', 54), up('::1', 53, 6), up('::1', 53, 6), up('fd00::1', 1053, 6)],
    },
  ],
  [
    'forward Example.ORG. 10.0.0.1 {\nexcept Foo.example.org bar.example.org.\n}',
    { from: 'example.org.', ignored: ['foo.example.org.', 'bar.example.org.'], upstreams: [up('10.0.0.1', 53)] },
  ],
  ['forward dns://cluster.local:53 10.0.0.1', { from: 'cluster.local.' }],
  ['forward 10.9.3.0/18 127.0.0.1', { from: '0.9.10.in-addr.arpa.' }],
  ['forward 10.0.0.0/8 127.0.0.1', { from: '10.in-addr.arpa.' }],
  ['forward fd00::/8 127.0.0.1', { from: 'd.f.ip6.arpa.' }],
  [
    'forward . 127.0.0.1 {\nforce_tcp\nprefer_udp\nexpire 1m30s\nmax_fails 5\nhealth_check 2s no_rec domain Example.NET\npolicy round_robin\nmax_concurrent 1000\n}',
    {
      forceTcp: true,
      preferUdp: true,
      expireMs: 90_000,
      maxFails: 5,
      healthCheckMs: 2000,
      hcRecursionDesired: false,
      hcDomain: 'example.net.',
      policy: 'round_robin',
      maxConcurrent: 1000,
    },
  ],
  ['forward . 127.0.0.1 {\nhealth_check 0.5s domain .\n}', { healthCheckMs: 500, hcDomain: '.' }],
  ['forward . 127.0.0.1 {\nhealth_check 0\nmax_fails 0\n}', { healthCheckMs: 0, maxFails: 0 }],
  ['forward . 127.0.0.1 {\npolicy sequential\n}', { policy: 'sequential' }],
  ['forward . 127.0.0.1 {\npolicy random\n}', { policy: 'random' }],
  [`forward . ${RESOLV}`, { upstreams: [up('10.96.0.10', 53), up('fd00::a', 53, 6), up('10.96.0.11', 53)] }],
  [`forward . ${EMPTY} 127.0.0.9`, { upstreams: [up('127.0.0.9', 53)] }],
  [`forward . ${Array.from({ length: 15 }, (_, i) => `127.0.0.${i + 1}`).join(' ')}`, {}],
];

for (const [body, want] of VALID) {
  test(`setup valid: ${body.replace(/\n/g, '⏎')}`, () => {
    const s = parse(body);
    const expected = { ...DEFAULTS, from: '.', ...want };
    for (const [k, v] of Object.entries(expected)) {
      if (k === 'upstreams' && want.upstreams === undefined) continue;
      assert.deepEqual(s[k as keyof ForwardSettings], v, k);
    }
  });
}

const INVALID: [string, number, string][] = [
  ['forward', 2, "Wrong argument count or unexpected line ending after 'forward'"],
  ['forward .', 2, "Wrong argument count or unexpected line ending after '.'"],
  ['forward . a27.0.0.1', 2, 'not an IP address or file: "a27.0.0.1"'],
  ['forward . /nonexistent/resolv.conf', 2, 'not an IP address or file: "/nonexistent/resolv.conf"'],
  ['forward . 127.0.0.1:99999', 2, 'invalid port "99999" in "127.0.0.1:99999"'],
  ['forward . 127.0.0.1:dns', 2, 'invalid port "dns" in "127.0.0.1:dns"'],
  [
    'forward . tls://127.0.0.1',
    2,
    "'tls' is not supported as a destination protocol in forward: tls://127.0.0.1 (node-local-dns forwards plain DNS over UDP and TCP only)",
  ],
  [
    'forward . https://127.0.0.1',
    2,
    "'https' is not supported as a destination protocol in forward: https://127.0.0.1 (node-local-dns forwards plain DNS over UDP and TCP only)",
  ],
  [`forward ${'x'.repeat(64)} 127.0.0.1`, 2, `unable to normalize '${'x'.repeat(16)}...'`],
  ['forward example..org 127.0.0.1', 2, "unable to normalize 'example..org'"],
  [`forward . ${Array.from({ length: 16 }, (_, i) => `127.0.0.${i + 1}`).join(' ')}`, 2, 'more than 15 TOs configured: 16'],
  [`forward . ${RESOLV} ${RESOLV} ${RESOLV} ${RESOLV} ${RESOLV} 127.0.0.1`, 2, 'more than 15 TOs configured: 16'],
  [`forward . ${EMPTY}`, 2, 'no nameservers found'],
  [`forward . ${HOSTNAME}`, 2, `nameserver "dns.example.org" in ${HOSTNAME} is not an IP address`],
  ['forward . 127.0.0.1 {\nblaatl\n}', 3, "unknown property 'blaatl'"],
  ['forward . 127.0.0.1 {\nexcept\n}', 3, "Wrong argument count or unexpected line ending after 'except'"],
  ['forward . 127.0.0.1 {\nhealth_check\n}', 3, "Wrong argument count or unexpected line ending after 'health_check'"],
  ['forward . 127.0.0.1 {\nhealth_check 0.5s domain\n}', 3, "Wrong argument count or unexpected line ending after 'domain'"],
  ['forward . 127.0.0.1 {\nhealth_check no_rec\n}', 3, 'time: invalid duration "no_rec"'],
  ['forward . 127.0.0.1 {\nhealth_check domain example.org\n}', 3, 'time: invalid duration "domain"'],
  ['forward . 127.0.0.1 {\nhealth_check 0.5s rec\n}', 3, 'health_check: unknown option rec'],
  ['forward . 127.0.0.1 {\nhealth_check 0.5s domain example..org\n}', 3, 'health_check: invalid domain name example..org'],
  ['forward . 127.0.0.1 {\nhealth_check -1s\n}', 3, "health_check can't be negative: -1000000000"],
  ['forward . 127.0.0.1 {\nexpire -1m30s\n}', 3, "expire can't be negative: -1m30s"],
  ['forward . 127.0.0.1 {\nexpire 10\n}', 3, 'time: missing unit in duration "10"'],
  ['forward . 127.0.0.1 {\nmax_fails\n}', 3, "Wrong argument count or unexpected line ending after 'max_fails'"],
  ['forward . 127.0.0.1 {\nmax_fails -1\n}', 3, 'strconv.ParseUint: parsing "-1": invalid syntax'],
  ['forward . 127.0.0.1 {\nmax_fails 4294967296\n}', 3, 'strconv.ParseUint: parsing "4294967296": value out of range'],
  ['forward . 127.0.0.1 {\nmax_fails 3 4\n}', 3, "Wrong argument count or unexpected line ending after '4'"],
  ['forward . 127.0.0.1 {\nmax_concurrent many\n}', 3, 'strconv.Atoi: parsing "many": invalid syntax'],
  ['forward . 127.0.0.1 {\nmax_concurrent -4\n}', 3, "max_concurrent can't be negative: -4"],
  ['forward . 127.0.0.1 {\npolicy foo\n}', 3, "unknown policy 'foo'"],
  ['forward . 127.0.0.1 {\nforce_tcp now\n}', 3, "Wrong argument count or unexpected line ending after 'now'"],
  ['forward . 127.0.0.1 {\n\ntls_servername dns\n}', 4, "'tls_servername' is not supported by node-local-dns's forward (plain DNS over UDP and TCP only)"],
  ['forward . 127.0.0.1 {\nnext NXDOMAIN\n}', 3, "'next' is not supported by node-local-dns's forward (plain DNS over UDP and TCP only)"],
];

for (const [body, line, detail] of INVALID) {
  test(`setup invalid: ${body.replace(/\n/g, '⏎').slice(0, 100)}`, () => {
    assert.throws(
      () => parse(body),
      (err: unknown) => {
        assert.ok(err instanceof CorefileError, String(err));
        assert.equal(err.message, `Corefile:${line} - Error during parsing: ${detail}`);
        return true;
      },
    );
  });
}

test('a CIDR FROM that expands to several zones warns and uses the first, as CoreDNS', () => {
  const log = new CaptureLogger();
  parse('forward 10.9.3.0/18 127.0.0.1', log);
  assert.deepEqual(log.lines, ["WARN plugin/forward: Unsupported CIDR notation: '10.9.3.0/18' expands to multiple zones. Using only '0.9.10.in-addr.arpa.'."]);
  assert.deepEqual(normalizeExact('10.9.3.0/18').length, 64);
  assert.deepEqual(normalizeExact('10.1.2.3/32'), ['3.2.1.10.in-addr.arpa.']);
  assert.deepEqual(normalizeExact('dns://Example.COM:1053'), ['example.com.']);
  assert.deepEqual(normalizeExact('a:'), []);
});

test('resolv.conf parsing: nameserver lines only, comments and other keywords ignored', () => {
  assert.deepEqual(parseResolvConf('nameserver 1.2.3.4\n#nameserver 5.6.7.8\nnameserver\nsearch a b\n  nameserver\t::1 # x\r\n').nameservers, [
    '1.2.3.4',
    '::1',
  ]);
  assert.deepEqual(parseResolvConf('').nameservers, []);
});

test('forwardSetup (name "forward") builds a ForwardPlugin', () => {
  assert.equal(forwardSetup.name, 'forward');
  const p = forwardSetup.setup(forwardDirective('forward . 127.0.0.1:5300 127.0.0.2'), setupContext());
  assert.ok(p instanceof ForwardPlugin);
  assert.equal(p.name, 'forward');
  assert.deepEqual(
    p.stats.upstreams.map((u) => u.to),
    ['127.0.0.1:5300', '127.0.0.2:53'],
  );
  p.stop();
});
