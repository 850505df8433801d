/**
 * Checks shared by every rendering of the node-local-dns bundle (deploy/kubernetes variants and
 * the Helm chart): schema, pod settings, flags (read by the agent's own parser), and a Corefile
 * that, templated and parsed by the agent's own code, agrees with ports, probes and Services.
 */
import assert from 'node:assert/strict';
import { parseOptions } from '../../../src/cli/options.ts';
import type { Mode } from '../../../deploy/render.ts';
import { corefileFacts, renderLikeAgent, type CorefileFacts } from './corefile.ts';
import { findOne, validateObject, type DaemonSetShape, type K8sObject, type ServiceShape } from './k8s.ts';

/** What KUBE_DNS_UPSTREAM_SERVICE_HOST would hold in the pod. */
export const UPSTREAM_SVC_IP = '10.96.0.20';

/** Checks shared by every rendering of the DaemonSet bundle (raw manifests and the Helm chart). */
export interface BundleExpectations {
  mode: Mode;
  dnsServer: string;
  localDns: string;
  domain: string;
  /** Containers declare their ports (false for surge updates). */
  declaresPorts: boolean;
}

/** The facts that tie a bundle together; returned for further checks by the caller. */
export function checkBundle(objs: K8sObject[], exp: BundleExpectations): { ds: DaemonSetShape; facts: CorefileFacts } {
  for (const o of objs) validateObject(o);
  for (const o of objs) assert.equal(o.metadata.namespace, 'kube-system', `${o.kind} ${o.metadata.name} namespace`);

  const ds = findOne<DaemonSetShape>(objs, 'DaemonSet');
  const pod = ds.spec.template.spec;
  const cm = findOne<K8sObject & { data: Record<string, string> }>(
    objs.filter((o) => o.kind === 'ConfigMap' && !o.metadata.name.endsWith('-dashboard')),
    'ConfigMap',
  );
  const upstream = findOne<ServiceShape>(objs, 'Service', 'kube-dns-upstream');
  const metricsSvc = findOne<ServiceShape>(objs.filter((o) => o.kind === 'Service' && o.metadata.name !== 'kube-dns-upstream'), 'Service');
  const sa = findOne(objs, 'ServiceAccount');

  // Pod placement and privileges.
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, 'Default');
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.equal(pod.serviceAccountName, sa.metadata.name);
  assert.ok(
    pod.tolerations?.some((t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined),
    'tolerates every taint',
  );
  for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) assert.equal(ds.spec.template.metadata.labels[k], v);
  for (const [k, v] of Object.entries(metricsSvc.spec.selector ?? {})) assert.equal(ds.spec.template.metadata.labels[k], v, `metrics Service selects the pods (${k})`);
  assert.equal(metricsSvc.spec.clusterIP, 'None', 'metrics Service is headless');
  assert.deepEqual(upstream.spec.selector, { 'k8s-app': 'kube-dns' });
  assert.deepEqual(
    upstream.spec.ports.map((p) => `${p.port}/${p.protocol}`).sort(),
    ['53/TCP', '53/UDP'],
  );

  const main = pod.containers[0]!;
  for (const c of pod.containers) {
    assert.deepEqual(c.securityContext?.capabilities?.add, ['NET_ADMIN'], `${c.name}: NET_ADMIN only`);
    assert.notEqual(c.securityContext?.privileged, true);
    assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${c.name}: requests`);
    assert.ok(c.resources?.limits?.memory, `${c.name}: memory limit`);
    assert.ok(
      c.volumeMounts?.some((m) => m.name === 'xtables-lock' && m.mountPath === '/run/xtables.lock'),
      `${c.name}: xtables lock`,
    );
  }
  const lock = pod.volumes?.find((v) => v.name === 'xtables-lock');
  assert.deepEqual(lock?.hostPath, { path: '/run/xtables.lock', type: 'FileOrCreate' });

  // Flags, read by the agent's own parser.
  const args = main.args ?? [];
  const opts = parseOptions(args);
  const expectedIps = exp.mode === 'ipvs' ? [exp.localDns] : [exp.localDns, exp.dnsServer];
  assert.deepEqual(opts.localIps, expectedIps);
  assert.equal(opts.corefilePath, '/etc/Corefile');
  assert.equal(opts.upstreamSvc, upstream.metadata.name);
  const configMount = main.volumeMounts?.find((m) => m.name === 'config-volume');
  const configVolume = pod.volumes?.find((v) => v.name === 'config-volume');
  assert.equal(configVolume?.configMap?.name, cm.metadata.name);
  const item = configVolume?.configMap?.items?.find((i) => i.key === 'Corefile');
  assert.equal(`${configMount?.mountPath}/${item?.path}`, opts.baseCorefilePath, 'ConfigMap lands on -basecorefile');
  assert.ok(main.volumeMounts?.some((m) => m.name === 'kube-dns-config' && m.mountPath === opts.kubeDnsConfigMapDir));

  // The Corefile as the agent will serve it.
  const rendered = renderLikeAgent(cm.data.Corefile!, { localIps: opts.localIps, upstreamServiceIp: UPSTREAM_SVC_IP, upstreamSvc: opts.upstreamSvc });
  assert.deepEqual(rendered.warnings, [], 'no template variable left');
  const facts = corefileFacts(rendered.corefile, `${cm.metadata.name}/Corefile`);
  assert.deepEqual(facts.keys, [`${exp.domain}:53`, 'in-addr.arpa:53', 'ip6.arpa:53', '.:53']);
  for (const bind of facts.binds) assert.deepEqual(bind, expectedIps);
  const clusterUpstream = exp.mode === 'ipvs' ? exp.dnsServer : UPSTREAM_SVC_IP;
  assert.deepEqual(facts.forwards.slice(0, 3).map((f) => f.slice(0, 2)), [['.', clusterUpstream], ['.', clusterUpstream], ['.', clusterUpstream]]);
  assert.deepEqual(facts.forwards[3], ['.', '/etc/resolv.conf']);
  assert.equal(facts.health.length, 1);
  assert.equal(facts.ready.length, 1);
  const metricsPorts = new Set(facts.prometheus.map((p) => p.port));
  assert.equal(metricsPorts.size, 1, 'one metrics listener');
  const metricsPort = [...metricsPorts][0]!;

  // Probes hit what the Corefile opens.
  const live = main.livenessProbe?.httpGet;
  const ready = main.readinessProbe?.httpGet;
  assert.ok(live && ready);
  assert.equal(live.path, '/health');
  assert.equal(Number(live.port), facts.health[0]!.port);
  assert.equal(live.host, facts.health[0]!.host);
  assert.ok(opts.localIps.includes(live.host!), 'health listens on a local IP');
  assert.equal(opts.healthPort, facts.health[0]!.port, '-health-port matches the health plugin');
  assert.equal(ready.path, '/ready');
  assert.equal(Number(ready.port), facts.ready[0]!.port);
  assert.equal(ready.host, facts.ready[0]!.host);

  // Services and declared ports.
  const agentMetricsPort = Number(/:(\d+)$/.exec(opts.metricsListenAddress)![1]);
  assert.deepEqual(
    metricsSvc.spec.ports.map((p) => [p.name, p.port, Number(p.targetPort)]),
    [['metrics', metricsPort, metricsPort], ['agent-metrics', agentMetricsPort, agentMetricsPort]],
  );
  const annotations = ds.spec.template.metadata.annotations ?? {};
  assert.equal(annotations['prometheus.io/port'], String(metricsPort));
  if (exp.declaresPorts) {
    const declared = (main.ports ?? []).map((p) => `${p.containerPort}/${p.protocol ?? 'TCP'}`).sort();
    const expected = [
      ...[...facts.dnsPorts].flatMap((p) => [`${p}/UDP`, `${p}/TCP`]),
      `${metricsPort}/TCP`,
      `${agentMetricsPort}/TCP`,
      `${facts.health[0]!.port}/TCP`,
      `${facts.ready[0]!.port}/TCP`,
    ].sort();
    assert.deepEqual(declared, expected);
    for (const p of main.ports ?? []) {
      assert.match(p.name ?? '', /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/, `port name ${p.name} is an IANA service name`);
    }
  } else {
    // hostNetwork: declared container ports become host ports, and the surge pod could not
    // be scheduled beside the old one.
    for (const c of pod.containers) assert.equal(c.ports, undefined, `${c.name} declares no ports`);
    assert.deepEqual(ds.spec.updateStrategy?.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
  }
  return { ds, facts };
}

