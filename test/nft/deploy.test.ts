/**
 * The nftables mode of the manifests and the Helm chart (kube-proxy --proxy-mode=nftables): the
 * iptables-mode bundle (the cache also takes over the kube-dns ClusterIP) whose agent, primary
 * and standby, runs with `-rulesbackend nftables`. Same checks as test/deploy for the other modes:
 * committed renderings up to date, schema, flags (parsed by the agent's parser), Corefile, ports
 * and probes agree, and the chart renders the same Corefile and pod settings as the manifest.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptions } from '../../src/cli/options.ts';
import { STANDBY_TEMPLATE_PATH, TEMPLATE_PATH, renderManifest } from '../../deploy/render.ts';
import { checkBundle } from '../deploy/lib/bundle.ts';
import { helmBinary, renderChart } from '../deploy/lib/helm.ts';
import { ROOT, findOne, parseManifests, type DaemonSetShape, type K8sObject } from '../deploy/lib/k8s.ts';

const DEFAULTS = { dnsServer: '10.96.0.10', localDns: '169.254.20.10', domain: 'cluster.local' };
const TEMPLATE = readFileSync(TEMPLATE_PATH, 'utf8');
const STANDBY_TEMPLATE = readFileSync(STANDBY_TEMPLATE_PATH, 'utf8');

function argsOf(objs: K8sObject[], name: string): string[] {
  return [...(findOne<DaemonSetShape>(objs, 'DaemonSet', name).spec.template.spec.containers[0]!.args ?? [])];
}

describe('nftables mode: deploy/kubernetes/nftables', () => {
  const rendered = renderManifest(TEMPLATE, { mode: 'nftables', ...DEFAULTS });
  const renderedStandby = renderManifest(STANDBY_TEMPLATE, { mode: 'nftables', ...DEFAULTS, standby: true });
  const objs = parseManifests(rendered, 'nftables');
  const standbyObjs = parseManifests(renderedStandby, 'nftables standby');

  test('committed renderings are up to date', () => {
    assert.equal(
      readFileSync(join(ROOT, 'deploy/kubernetes/nftables/node-local-dns.yaml'), 'utf8'),
      rendered,
      're-run: node deploy/render.ts --mode nftables --dns-server 10.96.0.10 --output deploy/kubernetes/nftables/node-local-dns.yaml',
    );
    assert.equal(
      readFileSync(join(ROOT, 'deploy/kubernetes/nftables/node-local-dns-standby.yaml'), 'utf8'),
      renderedStandby,
      're-run: node deploy/render.ts --standby --mode nftables --dns-server 10.96.0.10 --output deploy/kubernetes/nftables/node-local-dns-standby.yaml',
    );
  });

  test('the iptables bundle plus -rulesbackend nftables, for primary and standby', () => {
    const iptables = parseManifests(renderManifest(TEMPLATE, { mode: 'iptables', ...DEFAULTS }), 'iptables');
    const a = argsOf(objs, 'node-local-dns');
    const b = argsOf(iptables, 'node-local-dns');
    const i = a.indexOf('-rulesbackend');
    assert.deepEqual(a.slice(i, i + 2), ['-rulesbackend', 'nftables']);
    assert.deepEqual([...a.slice(0, i), ...a.slice(i + 2)], b);
    assert.equal(parseOptions(a).rulesBackend, 'nftables');
    assert.deepEqual(parseOptions(a).localIps, ['169.254.20.10', '10.96.0.10']);
    const s = argsOf(standbyObjs, 'node-local-dns-standby');
    assert.equal(parseOptions(s).rulesBackend, 'nftables', 'the standby removes the same table when it is the last instance');
    assert.equal(parseOptions(argsOf(iptables, 'node-local-dns')).rulesBackend, 'iptables');
  });

  test('schema, pod settings, flags, Corefile, ports and probes agree (with the standby)', () => {
    checkBundle(objs, { mode: 'nftables', ...DEFAULTS, declaresPorts: false });
    checkBundle([...objs, ...standbyObjs], { mode: 'nftables', ...DEFAULTS, declaresPorts: false, standby: true });
  });
});

let helmSkip: string | undefined;
try {
  helmBinary();
} catch (err) {
  helmSkip = `helm not available: ${(err as Error).message}`;
}

describe('nftables mode: Helm chart (mode=nftables)', { skip: helmSkip }, () => {
  test('same Corefile and agent arguments as deploy/kubernetes/nftables, primary and standby', async () => {
    const chart = parseManifests(await renderChart({ mode: 'nftables', standby: { enabled: true } }), 'helm template');
    const raw = parseManifests(renderManifest(TEMPLATE, { mode: 'nftables', ...DEFAULTS }), 'raw');
    const strip = (args: string[]) => {
      const i = args.indexOf('-syncinterval');
      if (i >= 0) args.splice(i, 2);
      return args;
    };
    assert.deepEqual(strip(argsOf(chart, 'node-local-dns')), strip(argsOf(raw, 'node-local-dns')));
    assert.equal(parseOptions(argsOf(chart, 'node-local-dns-standby')).rulesBackend, 'nftables');
    checkBundle(chart, { mode: 'nftables', ...DEFAULTS, declaresPorts: false, standby: true });
    const cm = (objs: K8sObject[]) => findOne<K8sObject & { data: { Corefile: string } }>(objs, 'ConfigMap', 'node-local-dns').data.Corefile;
    assert.equal(cm(chart), cm(raw));
  });
});
