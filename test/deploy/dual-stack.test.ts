/**
 * Dual-stack manifests: deploy/render.ts with one address per family in --local-dns and
 * --dns-server, and the committed deploy/kubernetes/dual-stack/ output. Every document validates
 * against the Kubernetes schema; the DaemonSet's flags parse with the agent's parser to both
 * families' addresses; the ConfigMap's Corefile, rendered like the agent does it with an IPv6
 * kube-dns-upstream ClusterIP, parses and binds every address, has `health` on both link-local
 * addresses (IPv6 in brackets) and the probes on the first. The Helm chart with `dualStack.*`
 * values renders the same Corefile and -localip as deploy/render.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptions } from '../../src/cli/options.ts';
import { RenderError, RenderErrorCode, STANDBY_TEMPLATE_PATH, TEMPLATE_PATH, renderManifest, type Mode } from '../../deploy/render.ts';
import { envOf } from './lib/bundle.ts';
import { renderChart } from './lib/helm.ts';
import { corefileFacts, renderLikeAgent } from './lib/corefile.ts';
import { ROOT, findOne, parseManifests, validateObject, type DaemonSetShape, type K8sObject } from './lib/k8s.ts';

const TEMPLATE = readFileSync(TEMPLATE_PATH, 'utf8');
const STANDBY_TEMPLATE = readFileSync(STANDBY_TEMPLATE_PATH, 'utf8');
const DUAL = { dnsServer: '10.96.0.10,fd00:10:96::a', localDns: '169.254.20.10,fd00::10', domain: 'cluster.local' };
const UPSTREAM_V6 = 'fd00:10:96::20';
const ALL_IPS = ['169.254.20.10', 'fd00::10', '10.96.0.10', 'fd00:10:96::a'];

function configMapCorefile(objs: K8sObject[]): string {
  const cm = findOne<K8sObject & { data: Record<string, string> }>(objs, 'ConfigMap', 'node-local-dns');
  return cm.data.Corefile!;
}

describe('deploy/kubernetes/dual-stack', () => {
  for (const [file, template, standby] of [
    ['node-local-dns.yaml', TEMPLATE, false],
    ['node-local-dns-standby.yaml', STANDBY_TEMPLATE, true],
  ] as const) {
    test(`committed ${file} is up to date`, () => {
      const committed = readFileSync(join(ROOT, 'deploy/kubernetes/dual-stack', file), 'utf8');
      const flags = `--mode iptables --dns-server ${DUAL.dnsServer} --local-dns ${DUAL.localDns}`;
      assert.equal(
        committed,
        renderManifest(template, { mode: 'iptables', ...DUAL, standby }),
        `re-run: node deploy/render.ts ${standby ? '--standby ' : ''}${flags} --output deploy/kubernetes/dual-stack/${file}`,
      );
    });
  }

  for (const mode of ['iptables', 'nftables', 'ipvs'] as const satisfies readonly Mode[]) {
    test(`${mode}: schema, flags of both families, Corefile binds, health on both families, probes`, () => {
      const objs = parseManifests(renderManifest(TEMPLATE, { mode, ...DUAL }), mode);
      const standbyObjs = parseManifests(renderManifest(STANDBY_TEMPLATE, { mode, ...DUAL, standby: true }), `${mode} standby`);
      for (const o of [...objs, ...standbyObjs]) validateObject(o);
      const expectedIps = mode === 'ipvs' ? ['169.254.20.10', 'fd00::10'] : ALL_IPS;
      for (const ds of [findOne<DaemonSetShape>(objs, 'DaemonSet'), findOne<DaemonSetShape>(standbyObjs, 'DaemonSet')]) {
        const main = ds.spec.template.spec.containers[0]!;
        const opts = parseOptions(main.args ?? []);
        assert.deepEqual(opts.localIps, expectedIps);
        assert.deepEqual(opts.ipFamilies, [4, 6]);
        assert.equal(opts.rulesBackend, mode === 'nftables' ? 'nftables' : 'iptables');
        const rendered = renderLikeAgent(configMapCorefile(objs), { localIps: opts.localIps, upstreamServiceIp: UPSTREAM_V6 });
        assert.deepEqual(rendered.warnings, []);
        const env = envOf(main);
        const facts = corefileFacts(rendered.corefile, 'Corefile', env);
        for (const bind of facts.binds) assert.deepEqual(bind, expectedIps);
        const healthPort = Number(env.NODE_LOCAL_DNS_HEALTH_PORT);
        assert.deepEqual(facts.health, [
          { host: '169.254.20.10', port: healthPort },
          { host: 'fd00::10', port: healthPort },
        ]);
        assert.match(rendered.corefile, /^ {4}health \[fd00::10\]:\{\$NODE_LOCAL_DNS_HEALTH_PORT\}$/m);
        assert.deepEqual(facts.ready, [{ host: '169.254.20.10', port: Number(env.NODE_LOCAL_DNS_READY_PORT) }]);
        const cluster = mode === 'ipvs' ? ['10.96.0.10', 'fd00:10:96::a'] : [UPSTREAM_V6];
        for (const f of facts.forwards.slice(0, 3)) assert.deepEqual(f.slice(0, 1 + cluster.length), ['.', ...cluster]);
        assert.equal(main.livenessProbe?.httpGet?.host, '169.254.20.10');
        assert.equal(Number(main.livenessProbe?.httpGet?.port), healthPort);
        assert.equal(main.readinessProbe?.httpGet?.host, '169.254.20.10');
      }
    });
  }

  test('single-stack IPv6: HOST:PORT addresses in brackets', () => {
    const out = renderManifest(TEMPLATE, { mode: 'iptables', dnsServer: 'fd00:10:96::a', localDns: 'fd00::10', domain: 'cluster.local' });
    assert.match(out, /^ {8}health \[fd00::10\]:\{\$NODE_LOCAL_DNS_HEALTH_PORT\}$/m);
    assert.match(out, /^ {8}bind fd00::10 fd00:10:96::a$/m);
    assert.match(out, /^ {14}host: fd00::10$/m);
  });

  test('one address per family, the same families in both lists', () => {
    for (const bad of [
      { localDns: '169.254.20.10,169.254.20.11' },
      { localDns: '169.254.20.10,fd00::10,fd00::11' },
      { localDns: '169.254.20.10,fd00::10', dnsServer: '10.96.0.10' },
      { localDns: '169.254.20.10', dnsServer: 'fd00:10:96::a' },
      { localDns: '169.254.20.10,', dnsServer: '10.96.0.10' },
    ]) {
      assert.throws(
        () => renderManifest(TEMPLATE, { mode: 'iptables', ...DUAL, ...bad }),
        (err: unknown) => err instanceof RenderError && err.code === RenderErrorCode.BadAddress,
        JSON.stringify(bad),
      );
    }
    // The families may come in either order.
    const v6first = renderManifest(TEMPLATE, {
      mode: 'iptables',
      domain: 'cluster.local',
      localDns: 'fd00::10,169.254.20.10',
      dnsServer: 'fd00:10:96::a,10.96.0.10',
    });
    assert.match(v6first, /^ {8}health \[fd00::10\]:/m);
    assert.match(v6first, /^ {8}health 169\.254\.20\.10:/m);
  });
});

describe('Helm chart: dualStack values', () => {
  for (const mode of ['iptables', 'nftables', 'ipvs'] as const) {
    test(`${mode}: same Corefile and -localip as deploy/render.ts's dual-stack rendering`, async () => {
      const chart = parseManifests(
        await renderChart({ mode, dnsServer: '10.96.0.10', localDns: '169.254.20.10', dualStack: { localDns: 'fd00::10', dnsServer: 'fd00:10:96::a' } }),
        'helm template',
      );
      for (const o of chart) validateObject(o);
      const raw = parseManifests(renderManifest(TEMPLATE, { mode, ...DUAL }), 'raw');
      assert.equal(configMapCorefile(chart), configMapCorefile(raw));
      const args = (objs: K8sObject[]) => parseOptions(findOne<DaemonSetShape>(objs, 'DaemonSet').spec.template.spec.containers[0]!.args ?? []);
      assert.deepEqual(args(chart).localIps, args(raw).localIps);
      assert.deepEqual(args(chart).localIps, mode === 'ipvs' ? ['169.254.20.10', 'fd00::10'] : ALL_IPS);
    });
  }

  test('IPv6 localDns is bracketed in health and ready; one dualStack value alone is refused', async () => {
    const v6 = parseManifests(await renderChart({ dnsServer: 'fd00:10:96::a', localDns: 'fd00::10' }), 'helm v6');
    assert.match(configMapCorefile(v6), /^ {4}health \[fd00::10\]:\{\$NODE_LOCAL_DNS_HEALTH_PORT\}$/m);
    assert.match(configMapCorefile(v6), /^ {4}ready \[fd00::10\]:\{\$NODE_LOCAL_DNS_READY_PORT\}$/m);
    await assert.rejects(renderChart({ dualStack: { localDns: 'fd00::10' } }), /set both \(dual-stack\) or neither/);
    await assert.rejects(renderChart({ dualStack: { localDns: 'fd00::10', dnsServer: 'kube-dns' } }), /dnsServer/);
  });
});
