import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  PILLAR,
  TemplateError,
  clusterDnsIp,
  renderCorefile,
  serviceHostEnvName,
  stubDomainBlock,
  firstPrometheusAddress,
  clusterZonesOf,
  type RenderInput,
} from './template.ts';

/**
 * Fixtures: the Corefile of the node-local-dns ConfigMap in kubernetes'
 * cluster/addons/dns/nodelocaldns/nodelocaldns.yaml, raw and after the two sed renderings of the
 * reference article (kube-proxy in iptables mode / in ipvs mode); Corefile.ipvs.expected is the
 * "Using config file" output node-cache logged in that article.
 */
const fixture = (name: string): string => readFileSync(new URL(`./testdata/${name}`, import.meta.url), 'utf8');
const RAW = fixture('nodelocaldns-configmap.Corefile');
const IPTABLES_BASE = fixture('Corefile.base.iptables');
const IPVS_BASE = fixture('Corefile.base.ipvs');
const IPVS_EXPECTED = fixture('Corefile.ipvs.expected');

function input(over: Partial<RenderInput>): RenderInput {
  return {
    base: IPVS_BASE,
    localIps: ['169.254.20.10'],
    upstreamSvc: 'kube-dns-upstream',
    env: { KUBE_DNS_UPSTREAM_SERVICE_HOST: '10.96.134.149' },
    upstreamNameservers: [],
    stubDomains: new Map(),
    dnsPort: 53,
    ...over,
  };
}

test('service env variable name', () => {
  const cases: [string, string][] = [
    ['kube-dns', 'KUBE_DNS_SERVICE_HOST'],
    ['kube-dns-upstream', 'KUBE_DNS_UPSTREAM_SERVICE_HOST'],
    ['coredns', 'COREDNS_SERVICE_HOST'],
    ['My-Svc', 'MY_SVC_SERVICE_HOST'],
  ];
  for (const [svc, env] of cases) assert.equal(serviceHostEnvName(svc), env);
});

test('clusterDnsIp: value, missing, empty, malformed — never <nil>', () => {
  assert.equal(clusterDnsIp('kube-dns-upstream', { KUBE_DNS_UPSTREAM_SERVICE_HOST: '10.96.134.149' }), '10.96.134.149');
  assert.equal(clusterDnsIp('kube-dns', { KUBE_DNS_SERVICE_HOST: 'fd00::a' }), 'fd00::a');
  for (const env of [{}, { KUBE_DNS_UPSTREAM_SERVICE_HOST: '' }, { KUBE_DNS_UPSTREAM_SERVICE_HOST: 'kube-dns' }]) {
    assert.throws(
      () => clusterDnsIp('kube-dns-upstream', env),
      (e: unknown) =>
        e instanceof TemplateError &&
        e.code === 'ERR_TEMPLATE_SERVICE_ENV' &&
        e.message.includes('KUBE_DNS_UPSTREAM_SERVICE_HOST') &&
        !e.message.includes('<nil>'),
    );
  }
});

test('ipvs-mode base renders to exactly what node-cache logged in the article', () => {
  const r = renderCorefile(input({ base: IPVS_BASE, localIps: ['169.254.20.10'], env: {} }));
  assert.equal(r.corefile, IPVS_EXPECTED);
  assert.equal(r.upstream, '/etc/resolv.conf');
  assert.equal(r.stubDomainCount, 0);
  assert.deepEqual(r.warnings, []);
});

test('iptables-mode base: cluster DNS from the env, both IPs bound', () => {
  const r = renderCorefile(input({ base: IPTABLES_BASE, localIps: ['169.254.20.10', '10.96.0.10'] }));
  assert.ok(!r.corefile.includes('__PILLAR__'));
  assert.equal((r.corefile.match(/forward \. 10\.96\.134\.149 \{\n {12}force_tcp\n {4}\}/g) ?? []).length, 3);
  assert.equal((r.corefile.match(/^ {4}bind 169\.254\.20\.10 10\.96\.0\.10$/gm) ?? []).length, 4);
  assert.match(r.corefile, /^ {4}forward \. \/etc\/resolv\.conf$/m);
  assert.match(r.corefile, /^ {4}health 169\.254\.20\.10:8080$/m);
  // Everything outside the substituted variables is untouched.
  assert.equal(r.corefile, IPTABLES_BASE.replaceAll(PILLAR.clusterDns, '10.96.134.149').replaceAll(PILLAR.upstreamServers, '/etc/resolv.conf'));
});

test('iptables-mode base without the service variable is a clear TemplateError', () => {
  assert.throws(
    () => renderCorefile(input({ base: IPTABLES_BASE, env: {} })),
    (e: unknown) => e instanceof TemplateError && /KUBE_DNS_UPSTREAM_SERVICE_HOST/.test(e.message) && /-upstreamsvc/.test(e.message),
  );
});

test('raw ConfigMap Corefile: local IPs joined by spaces, __PILLAR__DNS__SERVER__ removed', () => {
  const r = renderCorefile(input({ base: RAW, localIps: ['169.254.20.10', '10.96.0.10'] }));
  assert.equal((r.corefile.match(/^ {4}bind 169\.254\.20\.10 10\.96\.0\.10 $/gm) ?? []).length, 4);
  // An address (`:8080` follows) takes the first local IP alone; node-cache writes the whole list
  // there (`health 169.254.20.10 10.96.0.10:8080`), which health rejects.
  assert.match(r.corefile, /^ {4}health 169\.254\.20\.10:8080$/m);
  assert.ok(!r.corefile.includes(PILLAR.dnsServer));
  // __PILLAR__DNS__DOMAIN__ is the sed step's job; it is left and reported.
  assert.match(r.corefile, /^__PILLAR__DNS__DOMAIN__:53 \{/m);
  assert.deepEqual(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /__PILLAR__DNS__DOMAIN__/);
});

test('dual-stack: bind lists both families, addresses and the IPv6 upstream in brackets where a port follows', () => {
  const localIps = ['169.254.20.10', 'fd00::10', '198.18.0.10', 'fd00::a'];
  const base = [
    'cluster.local:53 {',
    '    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__',
    '    forward . __PILLAR__CLUSTER__DNS__ {',
    '        force_tcp',
    '    }',
    '    health __PILLAR__LOCAL__DNS__:8080',
    '    ready __PILLAR__LOCAL__DNS__:{$NODE_LOCAL_DNS_READY_PORT}',
    '}',
    'in-addr.arpa:53 {',
    '    bind __PILLAR__LOCAL__DNS__',
    '    forward . __PILLAR__CLUSTER__DNS__:53',
    '}',
    '',
  ].join('\n');
  const r = renderCorefile(input({ base, localIps, env: { KUBE_DNS_UPSTREAM_SERVICE_HOST: 'fd00::53' } }));
  assert.deepEqual(r.warnings, []);
  assert.equal(
    r.corefile,
    [
      'cluster.local:53 {',
      '    bind 169.254.20.10 fd00::10 198.18.0.10 fd00::a ',
      '    forward . fd00::53 {',
      '        force_tcp',
      '    }',
      '    health 169.254.20.10:8080',
      '    ready 169.254.20.10:{$NODE_LOCAL_DNS_READY_PORT}',
      '}',
      'in-addr.arpa:53 {',
      '    bind 169.254.20.10 fd00::10 198.18.0.10 fd00::a',
      '    forward . [fd00::53]:53',
      '}',
      '',
    ].join('\n'),
  );
  // IPv6 first: the address form is bracketed (node-cache writes `health fd00::10:8080`).
  const v6 = renderCorefile(input({ base, localIps: ['fd00::10', '169.254.20.10'], env: { KUBE_DNS_UPSTREAM_SERVICE_HOST: '198.18.0.53' } }));
  assert.match(v6.corefile, /^ {4}health \[fd00::10\]:8080$/m);
  assert.match(v6.corefile, /^ {4}forward \. 198\.18\.0\.53:53$/m);
  // Stub domain blocks bind every address of both families.
  const stubs = renderCorefile(
    input({ base, localIps, env: { KUBE_DNS_UPSTREAM_SERVICE_HOST: 'fd00::53' }, stubDomains: new Map([['acme.local', ['fd00::99']]]) }),
  );
  assert.match(
    stubs.corefile,
    /^acme\.local:53 \{\n {4}errors\n {4}cache 30\n {4}bind 169\.254\.20\.10 fd00::10 198\.18\.0\.10 fd00::a\n {4}forward \. fd00::99\n\}/m,
  );
});

test('template with __PILLAR__LOCAL__DNS__ needs local IPs', () => {
  assert.throws(
    () => renderCorefile(input({ base: RAW, localIps: [] })),
    (e: unknown) => e instanceof TemplateError && e.code === 'ERR_TEMPLATE_LOCAL_IPS',
  );
});

test('custom upstreams: TCP forward block becomes a UDP forward line', () => {
  const base = 'x:53 {\n    forward . __PILLAR__UPSTREAM__SERVERS__ {\n            force_tcp\n    }\n    cache 30\n}\n';
  const r = renderCorefile(input({ base, upstreamNameservers: ['198.18.0.53', '198.18.0.54:5353'] }));
  assert.equal(r.corefile, 'x:53 {\n    forward . 198.18.0.53 198.18.0.54:5353\n    cache 30\n}\n');
  assert.equal(r.upstream, '198.18.0.53 198.18.0.54:5353');
  assert.deepEqual(r.warnings, []);
  // Other indentation is handled too.
  const tabbed = 'x:53 {\n\tforward . __PILLAR__UPSTREAM__SERVERS__ {\n\t\tforce_tcp\n\t}\n}\n';
  assert.equal(renderCorefile(input({ base: tabbed, upstreamNameservers: ['198.18.0.53'] })).corefile, 'x:53 {\n\tforward . 198.18.0.53\n}\n');
  // Without custom upstreams the TCP block stays and gets resolv.conf.
  const r2 = renderCorefile(input({ base }));
  assert.equal(r2.corefile, base.replace(PILLAR.upstreamServers, '/etc/resolv.conf'));
});

test('custom upstreams with the stock UDP line', () => {
  const r = renderCorefile(input({ upstreamNameservers: ['198.18.0.53'] }));
  assert.match(r.corefile, /^ {4}forward \. 198\.18\.0\.53$/m);
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /assuming the upstream forward already uses UDP/);
});

test('stub domains become sorted server blocks with prometheus', () => {
  const stubs = new Map([
    ['zeta.example', ['198.18.0.2']],
    ['acme.local', ['198.18.0.1', '198.18.0.3:5353']],
  ]);
  const r = renderCorefile(input({ localIps: ['169.254.20.10', '10.96.0.10'], stubDomains: stubs, dnsPort: 1053 }));
  assert.equal(r.stubDomainCount, 2);
  const tail = r.corefile.slice(IPVS_BASE.length - '__PILLAR__UPSTREAM__SERVERS__'.length + '/etc/resolv.conf'.length);
  assert.equal(
    tail,
    '\nacme.local:1053 {\n    errors\n    cache 30\n    bind 169.254.20.10 10.96.0.10\n    forward . 198.18.0.1 198.18.0.3:5353\n    prometheus :9253\n}\n' +
      '\nzeta.example:1053 {\n    errors\n    cache 30\n    bind 169.254.20.10 10.96.0.10\n    forward . 198.18.0.2\n    prometheus :9253\n}\n',
  );
  assert.equal(
    stubDomainBlock('a.b', ['198.18.0.1'], ['169.254.20.10'], 53),
    '\na.b:53 {\n    errors\n    cache 30\n    bind 169.254.20.10\n    forward . 198.18.0.1\n    prometheus :9253\n}\n',
  );
});

test("stub blocks use the template's own metrics address (a standby's port placeholder), or none", () => {
  const stubs = new Map([['stub.test', ['198.18.0.2']]]);
  const standbyBase = IPTABLES_BASE.replaceAll('prometheus :9253', 'prometheus :{$NODE_LOCAL_DNS_METRICS_PORT}');
  assert.notEqual(standbyBase, IPTABLES_BASE);
  const r = renderCorefile(input({ base: standbyBase, stubDomains: stubs }));
  assert.match(r.corefile, /\nstub\.test:53 \{\n[^}]*\n {4}prometheus :\{\$NODE_LOCAL_DNS_METRICS_PORT\}\n\}\n$/);
  const bare = renderCorefile(input({ base: IPTABLES_BASE.replace(/^\s*prometheus .*\n/gm, ''), stubDomains: stubs }));
  assert.doesNotMatch(bare.corefile, /prometheus/);
  assert.equal(firstPrometheusAddress('.:53 {\n    prometheus {\n        legacy_metrics\n    }\n}\n'), 'localhost:9153');
  assert.equal(firstPrometheusAddress('.:53 {\n    prometheus [::1]:9253 {\n    }\n}\n'), '[::1]:9253');
});

test('cluster zones: the zones of the blocks forwarding to __PILLAR__CLUSTER__DNS__, whatever the domain', () => {
  assert.deepEqual(clusterZonesOf(IPTABLES_BASE), ['cluster.local.', 'in-addr.arpa.', 'ip6.arpa.']);
  assert.deepEqual(renderCorefile(input({ base: IPTABLES_BASE })).clusterZones, ['cluster.local.', 'in-addr.arpa.', 'ip6.arpa.']);
  const custom = IPTABLES_BASE.replaceAll('cluster.local', 'Corp.Example');
  assert.notEqual(custom, IPTABLES_BASE);
  assert.deepEqual(clusterZonesOf(custom), ['corp.example.', 'in-addr.arpa.', 'ip6.arpa.']);
  // No block forwards to the cluster DNS; an unparsable template names none either.
  assert.deepEqual(clusterZonesOf('.:53 {\n    forward . /etc/resolv.conf\n}\n'), []);
  assert.deepEqual(clusterZonesOf('cluster.local:53 {\n    forward . __PILLAR__CLUSTER__DNS__\n'), []);
});

test('rendering is deterministic and pure', () => {
  const i = input({
    base: IPTABLES_BASE,
    stubDomains: new Map([
      ['b.c', ['198.18.0.1']],
      ['a.c', ['198.18.0.2']],
    ]),
  });
  assert.deepEqual(renderCorefile(i), renderCorefile(i));
  assert.equal(i.base, IPTABLES_BASE);
});
