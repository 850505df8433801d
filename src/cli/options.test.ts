import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlagError, FlagHelpRequested } from './flags.ts';
import { DEFAULTS, optionsUsage, parseOptions, parseSyncInterval, splitListenAddress } from './options.ts';

test('defaults match node-cache (plus ours)', () => {
  const o = parseOptions([]);
  assert.equal(o.flagsGiven, false);
  assert.equal(o.confGiven, false);
  assert.deepEqual(o.localIps, []);
  assert.equal(o.corefilePath, '/etc/Corefile');
  assert.equal(o.baseCorefilePath, '/etc/coredns/Corefile.base');
  assert.equal(o.kubeDnsConfigMapDir, '/etc/kube-dns');
  assert.equal(o.upstreamSvc, 'kube-dns');
  assert.equal(o.setupInterface, true);
  assert.equal(o.interfaceName, 'nodelocaldns');
  assert.equal(o.interfaceType, 'dummy');
  assert.equal(o.setupIptables, true);
  assert.equal(o.syncIntervalMs, 60_000);
  assert.equal(o.healthPort, 8080);
  assert.equal(o.metricsListenAddress, '0.0.0.0:9353');
  assert.equal(o.skipTeardown, false);
  assert.equal(o.dnsPort, 53);
  assert.equal(o.pidfile, '');
  assert.equal(o.quiet, false);
  assert.equal(o.version, false);
  assert.equal(o.workers, 0);
  assert.equal(o.standby, false);
  assert.deepEqual(o.ignoredFlags, []);
  assert.equal(DEFAULTS.syncIntervalMs, 60_000);
});

test('the stock DaemonSet command line parses', () => {
  const o = parseOptions([
    '-localip',
    '169.254.20.10,10.96.0.10',
    '-conf',
    '/etc/Corefile',
    '-upstreamsvc',
    'kube-dns-upstream',
    '-pidfile',
    '/tmp/node-cache.pid',
  ]);
  assert.deepEqual(o.localIps, ['169.254.20.10', '10.96.0.10']);
  assert.deepEqual(o.ipFamilies, [4]);
  assert.equal(o.confGiven, true);
  assert.equal(o.flagsGiven, true);
  assert.equal(o.upstreamSvc, 'kube-dns-upstream');
  assert.equal(o.pidfile, '/tmp/node-cache.pid');
});

test('dual-stack -localip: both families, every address kept in the order given', () => {
  const o = parseOptions(['-localip', '169.254.20.10,fd00::10,198.18.0.10,fd00::a']);
  assert.deepEqual(o.localIps, ['169.254.20.10', 'fd00::10', '198.18.0.10', 'fd00::a']);
  assert.deepEqual(o.ipFamilies, [4, 6]);
  assert.deepEqual(parseOptions(['-localip', 'fd00::10,169.254.20.10']).ipFamilies, [6, 4]);
  assert.deepEqual(parseOptions([]).ipFamilies, []);
});

test('-conf wins over node-cache -corefile; -corefile alone is used', () => {
  assert.equal(parseOptions(['-corefile', '/a', '-conf', '/b']).corefilePath, '/b');
  assert.equal(parseOptions(['-corefile', '/a']).corefilePath, '/a');
  assert.equal(parseOptions(['-corefile', '/a']).confGiven, false);
});

test('every flag is accepted in every Go form', () => {
  const o = parseOptions([
    '--localip=fd00::10,fd00::11',
    '-setupinterface=false',
    '-interfacename',
    'nld0',
    '-syncinterval=5s',
    '-metrics-listen-address',
    '127.0.0.1:0',
    '-setupiptables=false',
    '-basecorefile',
    '/b',
    '-kubednscm',
    '/k',
    '-health-port',
    '8081',
    '-skipteardown',
    '-dns.port',
    '1053',
    '-quiet',
    '-version',
    '-plugins',
    '-interfacetype',
    'bridge',
    '-workers',
    '2',
    '-standby',
  ]);
  assert.deepEqual(o.localIps, ['fd00::10', 'fd00::11']);
  assert.deepEqual(o.ipFamilies, [6]);
  assert.equal(o.setupInterface, false);
  assert.equal(o.interfaceName, 'nld0');
  assert.equal(o.syncIntervalMs, 5000);
  assert.equal(o.metricsListenAddress, '127.0.0.1:0');
  assert.equal(o.setupIptables, false);
  assert.equal(o.baseCorefilePath, '/b');
  assert.equal(o.kubeDnsConfigMapDir, '/k');
  assert.equal(o.healthPort, 8081);
  assert.equal(o.skipTeardown, true);
  assert.equal(o.dnsPort, 1053);
  assert.equal(o.quiet, true);
  assert.equal(o.version, true);
  assert.equal(o.plugins, true);
  assert.equal(o.interfaceType, 'bridge');
  assert.equal(o.workers, 2);
  assert.equal(o.standby, true);
});

test('-syncinterval: bare seconds, node-cache ns-as-seconds, literal Go durations', () => {
  const cases: [string, number][] = [
    ['60', 60_000],
    ['60ns', 60_000],
    ['60s', 60_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1', 1000],
    ['2ns', 2000],
  ];
  for (const [t, ms] of cases) {
    assert.equal(parseSyncInterval(t), ms, t);
    assert.equal(parseOptions(['-syncinterval', t]).syncIntervalMs, ms, t);
  }
  for (const bad of ['0', '0s', '-5s', 'abc', '', '5x']) {
    assert.throws(() => parseOptions(['-syncinterval', bad]), FlagError, bad);
  }
});

test('compatibility flags are accepted and reported as ignored', () => {
  const o = parseOptions(['-initialdelay', '10ns', '-setupebtables', '-reloadwithsignal']);
  assert.deepEqual(
    o.ignoredFlags.map((f) => f.flag),
    ['initialdelay', 'setupebtables', 'reloadwithsignal'],
  );
  assert.deepEqual(parseOptions(['-setupebtables=false']).ignoredFlags, []);
});

test('validation errors are FlagErrors with node-cache-like messages', () => {
  const cases: [string[], RegExp][] = [
    [['-localip', ''], /^invalid localip specified - ""$/],
    [['-localip', '169.254.20.10,nope'], /^invalid localip specified - "nope"$/],
    [['-localip', '169.254.20.10,'], /^invalid localip specified - ""$/],
    [['-dns.port', 'x'], /^invalid port specified - "x"$/],
    [['-dns.port', '70000'], /^invalid port specified/],
    [['-health-port', 'abc'], /^invalid healthcheck port specified - "abc"$/],
    [['-interfacetype', 'veth'], /flag -interfacetype: want dummy or bridge/],
    [['-interfacename', 'averyveryverylongname'], /invalid interface name/],
    [['-metrics-listen-address', 'nonsense'], /metrics-listen-address: want host:port/],
    [['-workers', '-1'], /must not be negative/],
    [['-upstreamsvc', ''], /empty service name/],
    [['-bogus'], /^flag provided but not defined: -bogus$/],
    [['-localip', '169.254.20.10', 'extra'], /^extra command line arguments: \[extra\]$/],
  ];
  for (const [argv, re] of cases) {
    assert.throws(
      () => parseOptions(argv),
      (e: unknown) => e instanceof FlagError && re.test(e.message),
      argv.join(' '),
    );
  }
});

test('-h requests help; usage lists every flag sorted', () => {
  assert.throws(() => parseOptions(['-h']), FlagHelpRequested);
  const u = optionsUsage('node-local-dns', '1.2.3');
  assert.match(u, /^Usage of node-local-dns:\nRuns node-local-dns 1\.2\.3/);
  const names = [...u.matchAll(/^ {2}-(\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(names, [...names].sort());
  for (const f of [
    'localip',
    'conf',
    'corefile',
    'basecorefile',
    'kubednscm',
    'upstreamsvc',
    'setupinterface',
    'interfacename',
    'setupiptables',
    'syncinterval',
    'health-port',
    'metrics-listen-address',
    'skipteardown',
    'dns.port',
    'pidfile',
    'quiet',
    'version',
    'plugins',
    'interfacetype',
    'workers',
    'standby',
    'initialdelay',
    'setupebtables',
    'reloadwithsignal',
  ]) {
    assert.ok(names.includes(f), f);
  }
  assert.match(u, / {2}-syncinterval duration\n {4}\t.*\(default 1m0s\)/);
  assert.match(u, / {2}-conf string\n {4}\t.*\(default "\/etc\/Corefile"\)/);
});

test('splitListenAddress', () => {
  assert.deepEqual(splitListenAddress('0.0.0.0:9353', 'f'), { host: '0.0.0.0', port: 9353 });
  assert.deepEqual(splitListenAddress(':9353', 'f'), { host: '', port: 9353 });
  assert.deepEqual(splitListenAddress('[::1]:9353', 'f'), { host: '::1', port: 9353 });
  assert.throws(() => splitListenAddress('::1:9353', 'f'), FlagError);
  assert.throws(() => splitListenAddress('a:99999', 'f'), FlagError);
});
