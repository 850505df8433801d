/**
 * Checks shared by every rendering of the node-local-dns bundle (deploy/kubernetes variants and
 * the Helm chart): schema, pod settings, flags (read by the agent's own parser), and a Corefile
 * that, templated and parsed by the agent's own code with each container's environment, agrees
 * with ports, probes and Services. With a standby DaemonSet, both instances are checked this way
 * and then against each other (docs/zero-downtime.md): same addresses, Corefile, image and peer
 * directory; disjoint selectors and HTTP ports.
 */
import assert from 'node:assert/strict';
import { parseOptions, type Options } from '../../../src/cli/options.ts';
import type { Mode } from '../../../deploy/render.ts';
import { corefileFacts, renderLikeAgent, type CorefileFacts } from './corefile.ts';
import { findOne, validateObject, type Container, type DaemonSetShape, type K8sObject, type ServiceShape } from './k8s.ts';

/** What KUBE_DNS_UPSTREAM_SERVICE_HOST would hold in the pod. */
export const UPSTREAM_SVC_IP = '10.96.0.20';

/** Checks shared by every rendering of the DaemonSet bundle (raw manifests and the Helm chart). */
export interface BundleExpectations {
  mode: Mode;
  dnsServer: string;
  localDns: string;
  domain: string;
  /** The primary's container declares its ports (false for surge updates; the standby never does). */
  declaresPorts: boolean;
  /** The bundle holds a standby DaemonSet (agent with -standby) beside the primary. */
  standby?: boolean;
}

/** The HTTP ports one instance binds on the node. */
export interface HttpPorts {
  /** `health` plugin (liveness probe). */
  health: number;
  /** `ready` plugin (readiness probe). */
  ready: number;
  /** `prometheus` plugin. */
  metrics: number;
  /** `-metrics-listen-address` (the agent's own metrics). */
  agentMetrics: number;
}

/** One checked DaemonSet: its container, flags, environment, served Corefile and Service. */
export interface InstanceFacts {
  ds: DaemonSetShape;
  container: Container;
  opts: Options;
  env: Record<string, string>;
  /** The Corefile as this instance serves it (its own env applied). */
  facts: CorefileFacts;
  metricsSvc: ServiceShape;
  ports: HttpPorts;
}

export interface BundleFacts {
  /** The primary DaemonSet and its Corefile facts (kept for callers of the single-DaemonSet form). */
  ds: DaemonSetShape;
  facts: CorefileFacts;
  primary: InstanceFacts;
  standby?: InstanceFacts;
}

/** A container's `env` as a map (only literal values: the manifests use no valueFrom). */
export function envOf(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    assert.equal(typeof e.value, 'string', `${c.name}: env ${e.name} has a literal value`);
    env[e.name] = e.value!;
  }
  return env;
}

/** True when every label of `selector` is on `labels`. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return selector !== undefined && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

interface Common {
  cm: K8sObject & { data: Record<string, string> };
  upstream: ServiceShape;
  sa: K8sObject;
  metricsServices: ServiceShape[];
}

/** The checks every node-local-dns DaemonSet passes, primary or standby. */
function checkInstance(ds: DaemonSetShape, common: Common, exp: BundleExpectations, role: 'primary' | 'standby'): InstanceFacts {
  const what = `${role} DaemonSet ${ds.metadata.name}`;
  const pod = ds.spec.template.spec;
  const { cm, upstream, sa } = common;

  // Pod placement and privileges.
  assert.equal(pod.hostNetwork, true, what);
  assert.equal(pod.dnsPolicy, 'Default', what);
  assert.equal(pod.priorityClassName, 'system-node-critical', what);
  assert.equal(pod.serviceAccountName, sa.metadata.name, what);
  assert.ok(
    pod.tolerations?.some((t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined),
    `${what} tolerates every taint`,
  );
  for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) assert.equal(ds.spec.template.metadata.labels[k], v, what);
  // One agent per pod: the standby is a DaemonSet of its own, not a second container, because
  // a rolling update replaces the whole pod (docs/zero-downtime.md).
  assert.equal(pod.containers.length, 1, `${what}: one container per pod`);
  const main = pod.containers[0]!;
  assert.deepEqual(main.securityContext?.capabilities?.add, ['NET_ADMIN'], `${what}: NET_ADMIN only`);
  assert.notEqual(main.securityContext?.privileged, true);
  assert.ok(main.resources?.requests?.cpu && main.resources.requests.memory, `${what}: requests`);
  assert.ok(main.resources?.limits?.memory, `${what}: memory limit`);
  assert.ok(
    main.volumeMounts?.some((m) => m.name === 'xtables-lock' && m.mountPath === '/run/xtables.lock'),
    `${what}: xtables lock`,
  );
  const lock = pod.volumes?.find((v) => v.name === 'xtables-lock');
  assert.deepEqual(lock?.hostPath, { path: '/run/xtables.lock', type: 'FileOrCreate' }, what);

  // Flags, read by the agent's own parser.
  const opts = parseOptions(main.args ?? []);
  assert.equal(opts.standby, role === 'standby', `${what}: -standby`);
  const expectedIps = exp.mode === 'ipvs' ? [exp.localDns] : [exp.localDns, exp.dnsServer];
  assert.deepEqual(opts.localIps, expectedIps, what);
  assert.equal(opts.corefilePath, '/etc/Corefile');
  assert.equal(opts.upstreamSvc, upstream.metadata.name);
  const configMount = main.volumeMounts?.find((m) => m.name === 'config-volume');
  const configVolume = pod.volumes?.find((v) => v.name === 'config-volume');
  assert.equal(configVolume?.configMap?.name, cm.metadata.name, `${what} mounts the ConfigMap`);
  const item = configVolume?.configMap?.items?.find((i) => i.key === 'Corefile');
  assert.equal(`${configMount?.mountPath}/${item?.path}`, opts.baseCorefilePath, 'ConfigMap lands on -basecorefile');
  assert.ok(main.volumeMounts?.some((m) => m.name === 'kube-dns-config' && m.mountPath === opts.kubeDnsConfigMapDir));

  // -peerdir is the node's directory (a hostPath), or instances of two pods never see each
  // other and the one leaving tears down under the other.
  assert.notEqual(opts.peerDir, '', `${what}: -peerdir enabled`);
  const peerMount = main.volumeMounts?.find((m) => m.mountPath === opts.peerDir);
  assert.ok(peerMount, `${what}: -peerdir ${opts.peerDir} is a mount`);
  const peerVolume = pod.volumes?.find((v) => v.name === peerMount.name);
  assert.deepEqual(peerVolume?.hostPath, { path: opts.peerDir, type: 'DirectoryOrCreate' }, `${what}: -peerdir is the node's directory`);

  // The Corefile as this instance serves it: the agent's templating, then its parser with the
  // container's environment (the HTTP ports are {$NODE_LOCAL_DNS_*_PORT}).
  const env = envOf(main);
  const rendered = renderLikeAgent(cm.data.Corefile!, { localIps: opts.localIps, upstreamServiceIp: UPSTREAM_SVC_IP, upstreamSvc: opts.upstreamSvc });
  assert.deepEqual(rendered.warnings, [], 'no template variable left');
  const facts = corefileFacts(rendered.corefile, `${cm.metadata.name}/Corefile`, env);
  assert.deepEqual(facts.keys, [`${exp.domain}:53`, 'in-addr.arpa:53', 'ip6.arpa:53', '.:53']);
  for (const bind of facts.binds) assert.deepEqual(bind, expectedIps);
  const clusterUpstream = exp.mode === 'ipvs' ? exp.dnsServer : UPSTREAM_SVC_IP;
  assert.deepEqual(
    facts.forwards.slice(0, 3).map((f) => f.slice(0, 2)),
    [
      ['.', clusterUpstream],
      ['.', clusterUpstream],
      ['.', clusterUpstream],
    ],
  );
  assert.deepEqual(facts.forwards[3], ['.', '/etc/resolv.conf']);
  assert.equal(facts.health.length, 1);
  assert.equal(facts.ready.length, 1);
  const metricsPorts = new Set(facts.prometheus.map((p) => p.port));
  assert.equal(metricsPorts.size, 1, `${what}: one metrics listener`);
  const metricsPort = [...metricsPorts][0]!;

  // Probes hit what the Corefile opens for this instance.
  const live = main.livenessProbe?.httpGet;
  const ready = main.readinessProbe?.httpGet;
  assert.ok(live && ready, what);
  assert.equal(live.path, '/health');
  assert.equal(Number(live.port), facts.health[0]!.port, `${what}: liveness probe port`);
  assert.equal(live.host, facts.health[0]!.host);
  assert.ok(opts.localIps.includes(live.host!), 'health listens on a local IP');
  if (role === 'primary') {
    assert.equal(opts.healthPort, facts.health[0]!.port, '-health-port matches the health plugin');
  }
  assert.equal(ready.path, '/ready');
  assert.equal(Number(ready.port), facts.ready[0]!.port, `${what}: readiness probe port`);
  assert.equal(ready.host, facts.ready[0]!.host);

  // The metrics Service of these pods, and declared ports.
  const agentMetricsPort = Number(/:(\d+)$/.exec(opts.metricsListenAddress)![1]);
  const podLabels = ds.spec.template.metadata.labels;
  const own = common.metricsServices.filter((s) => selects(s.spec.selector, podLabels));
  assert.equal(own.length, 1, `${what}: one metrics Service selects its pods`);
  const metricsSvc = own[0]!;
  assert.equal(metricsSvc.spec.clusterIP, 'None', 'metrics Service is headless');
  assert.deepEqual(
    metricsSvc.spec.ports.map((p) => [p.name, p.port, Number(p.targetPort)]),
    [
      ['metrics', metricsPort, metricsPort],
      ['agent-metrics', agentMetricsPort, agentMetricsPort],
    ],
    `${what}: metrics Service ports`,
  );
  const annotations = ds.spec.template.metadata.annotations ?? {};
  assert.equal(annotations['prometheus.io/port'], String(metricsPort));
  if (role === 'primary' && exp.declaresPorts) {
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
    // hostNetwork: declared container ports become host ports. The surge pod could not be
    // scheduled beside the old one, nor a standby declaring 53 beside the primary.
    assert.equal(main.ports, undefined, `${what} declares no ports`);
    if (role === 'primary') assert.deepEqual(ds.spec.updateStrategy?.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
    // A port name resolves only against declared ports: the probes give numbers.
    assert.equal(typeof live.port, 'number', `${what}: liveness probe port by number`);
    assert.equal(typeof ready.port, 'number', `${what}: readiness probe port by number`);
  }
  if (ds.spec.updateStrategy?.rollingUpdate?.maxSurge) {
    // Old and new pod of a node are peers only through the shared peer directory; without it
    // the old pod's SIGTERM would remove the interface and rules the new one serves with.
    assert.notEqual(opts.peerDir, '', `${what}: a surging DaemonSet needs -peerdir`);
  }
  return {
    ds,
    container: main,
    opts,
    env,
    facts,
    metricsSvc,
    ports: { health: facts.health[0]!.port, ready: facts.ready[0]!.port, metrics: metricsPort, agentMetrics: agentMetricsPort },
  };
}

/** The standby against the primary: what must be shared, and what must differ. */
function checkPair(primary: InstanceFacts, standby: InstanceFacts): void {
  const p = primary.ds;
  const s = standby.ds;
  assert.notEqual(s.metadata.name, p.metadata.name);
  assert.match(s.metadata.name, /-standby$/, 'the standby DaemonSet is named <primary>-standby');

  // Disjoint selectors: neither controller may claim the other's pods.
  assert.ok(!selects(p.spec.selector.matchLabels, s.spec.template.metadata.labels), "the primary's selector does not match standby pods");
  assert.ok(!selects(s.spec.selector.matchLabels, p.spec.template.metadata.labels), "the standby's selector does not match primary pods");
  assert.notEqual(standby.metricsSvc.metadata.name, primary.metricsSvc.metadata.name, 'one metrics Service per DaemonSet');

  // Its own update schedule: old pod first, or new pod first one node at a time (its HTTP ports
  // are shared through SO_REUSEPORT by the old and the new standby pod, as the primary's).
  const st = s.spec.updateStrategy;
  const surge = st?.rollingUpdate?.maxSurge === 1 && st.rollingUpdate.maxUnavailable === 0;
  assert.ok(
    st?.type === 'OnDelete' || (st?.type === 'RollingUpdate' && (st.rollingUpdate?.maxSurge === 0 || surge)),
    `standby updateStrategy ${JSON.stringify(st)}`,
  );

  // Same agent, same addresses, same Corefile; same node-wide resources.
  const pp = p.spec.template.spec as DaemonSetShape['spec']['template']['spec'] & Record<string, unknown>;
  const sp = s.spec.template.spec as DaemonSetShape['spec']['template']['spec'] & Record<string, unknown>;
  for (const k of ['hostNetwork', 'dnsPolicy', 'priorityClassName', 'serviceAccountName', 'tolerations', 'nodeSelector', 'volumes'] as const) {
    assert.deepEqual(sp[k], pp[k], `standby pod ${k} equals the primary's`);
  }
  for (const k of ['image', 'imagePullPolicy', 'securityContext', 'resources', 'volumeMounts'] as const) {
    assert.deepEqual(
      (standby.container as Container & Record<string, unknown>)[k],
      (primary.container as Container & Record<string, unknown>)[k],
      `standby container ${k} equals the primary's`,
    );
  }
  assert.equal(standby.opts.peerDir, primary.opts.peerDir, 'same -peerdir');

  // Flags: the primary's, plus -standby and its own agent metrics address. -health-port stays the
  // primary's health port: it names the rules whichever instance is last out removes. The
  // primary's surge strategy forces -skipteardown on the primary only.
  assert.equal(standby.opts.healthPort, primary.ports.health, "the standby's -health-port is the primary's health port");
  const comparable = (o: Options, skipTeardown: boolean): Record<string, unknown> => {
    const { given: _given, standby: _standby, metricsListenAddress: _metrics, skipTeardown: _skip, ...rest } = o;
    return { ...rest, skipTeardown };
  };
  const primarySurges = p.spec.updateStrategy?.rollingUpdate?.maxSurge === 1;
  assert.deepEqual(
    comparable(standby.opts, standby.opts.skipTeardown),
    comparable(primary.opts, primarySurges ? standby.opts.skipTeardown : primary.opts.skipTeardown),
    "standby flags equal the primary's but for -standby and -metrics-listen-address",
  );

  // The shared Corefile serves the same zones on the same addresses and DNS port ...
  assert.deepEqual(standby.facts.keys, primary.facts.keys);
  assert.deepEqual(standby.facts.binds, primary.facts.binds);
  assert.deepEqual(standby.facts.forwards, primary.facts.forwards);
  assert.deepEqual(standby.facts.dnsPorts, primary.facts.dnsPorts);
  // ... and HTTP listeners on ports of each instance's own: the only shared port is DNS's.
  const all = [...Object.values(primary.ports), ...Object.values(standby.ports)];
  assert.equal(new Set(all).size, all.length, `HTTP ports of primary ${JSON.stringify(primary.ports)} and standby ${JSON.stringify(standby.ports)} all differ`);
  for (const port of all) assert.ok(!primary.facts.dnsPorts.has(port), `HTTP port ${port} is not the DNS port`);
}

/** The facts that tie a bundle together; returned for further checks by the caller. */
export function checkBundle(objs: K8sObject[], exp: BundleExpectations): BundleFacts {
  for (const o of objs) validateObject(o);
  for (const o of objs) assert.equal(o.metadata.namespace, 'kube-system', `${o.kind} ${o.metadata.name} namespace`);

  const common: Common = {
    cm: findOne<K8sObject & { data: Record<string, string> }>(
      objs.filter((o) => o.kind === 'ConfigMap' && !o.metadata.name.endsWith('-dashboard')),
      'ConfigMap',
    ),
    upstream: findOne<ServiceShape>(objs, 'Service', 'kube-dns-upstream'),
    sa: findOne(objs, 'ServiceAccount'),
    metricsServices: objs.filter((o): o is ServiceShape => o.kind === 'Service' && o.metadata.name !== 'kube-dns-upstream'),
  };
  assert.deepEqual(common.upstream.spec.selector, { 'k8s-app': 'kube-dns' });
  assert.deepEqual(common.upstream.spec.ports.map((p) => `${p.port}/${p.protocol}`).sort(), ['53/TCP', '53/UDP']);

  const daemonSets = objs.filter((o): o is DaemonSetShape => o.kind === 'DaemonSet');
  const isStandby = (ds: DaemonSetShape): boolean => parseOptions(ds.spec.template.spec.containers[0]?.args ?? []).standby;
  const primaries = daemonSets.filter((ds) => !isStandby(ds));
  const standbys = daemonSets.filter(isStandby);
  assert.equal(primaries.length, 1, 'one primary DaemonSet');
  assert.equal(standbys.length, exp.standby === true ? 1 : 0, `${exp.standby === true ? 'one' : 'no'} standby DaemonSet`);
  assert.equal(common.metricsServices.length, daemonSets.length, 'one metrics Service per DaemonSet');

  const primary = checkInstance(primaries[0]!, common, exp, 'primary');
  const result: BundleFacts = { ds: primary.ds, facts: primary.facts, primary };
  if (standbys.length === 1) {
    result.standby = checkInstance(standbys[0]!, common, exp, 'standby');
    checkPair(primary, result.standby);
  }
  return result;
}
