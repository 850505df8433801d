/**
 * deploy/kubernetes: the __PILLAR__ templates (primary, and the standby DaemonSet rendered with
 * --standby), deploy/render.ts and the rendered iptables/IPVS variants. Every document parses
 * and validates against the Kubernetes OpenAPI schema; the DaemonSets' flags parse with the
 * agent's own flag parser; the ConfigMap's Corefile, templated like the agent does it, parses
 * with the agent's own Corefile parser (with each container's env for the HTTP ports) and
 * agrees with the container ports, probes and Services of both DaemonSets.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptions } from '../../src/cli/options.ts';
import { RenderError, RenderErrorCode, STANDBY_TEMPLATE_PATH, TEMPLATE_PATH, main as renderMain, renderManifest, type Mode } from '../../deploy/render.ts';
import { checkBundle, envOf } from './lib/bundle.ts';
import { corefileFacts, renderLikeAgent } from './lib/corefile.ts';
import { ROOT, findOne, parseManifests, validateObject, type DaemonSetShape, type K8sObject } from './lib/k8s.ts';

const TEMPLATE = readFileSync(TEMPLATE_PATH, 'utf8');
const STANDBY_TEMPLATE = readFileSync(STANDBY_TEMPLATE_PATH, 'utf8');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const DEFAULTS = { dnsServer: '10.96.0.10', localDns: '169.254.20.10', domain: 'cluster.local' };

describe('deploy/kubernetes/nodelocaldns.yaml (the __PILLAR__ template)', () => {
  test('parses and validates as it stands (placeholders are plain strings)', () => {
    const objs = parseManifests(TEMPLATE, 'nodelocaldns.yaml');
    assert.deepEqual(
      objs.map((o) => `${o.kind}/${o.metadata.name}`),
      ['ServiceAccount/node-local-dns', 'Service/kube-dns-upstream', 'ConfigMap/node-local-dns', 'DaemonSet/node-local-dns', 'Service/node-local-dns'],
    );
    for (const o of objs) validateObject(o);
  });

  test('the ConfigMap keeps the placeholders where the sed commands and the agent expect them', () => {
    const objs = parseManifests(TEMPLATE, 't');
    const cm = findOne<K8sObject & { data: { Corefile: string } }>(objs, 'ConfigMap');
    // Placeholders are plain words to the parser; the agent's parser reads the template as is.
    // The HTTP ports come from the container's env ({$NODE_LOCAL_DNS_*_PORT}).
    const env = envOf(findOne<DaemonSetShape>(objs, 'DaemonSet').spec.template.spec.containers[0]!);
    assert.deepEqual(env, { NODE_LOCAL_DNS_HEALTH_PORT: '8080', NODE_LOCAL_DNS_READY_PORT: '8181', NODE_LOCAL_DNS_METRICS_PORT: '9253' });
    const blocks = corefileFacts(cm.data.Corefile, 'Corefile.base', env);
    assert.deepEqual(blocks.keys, ['__PILLAR__DNS__DOMAIN__:53', 'in-addr.arpa:53', 'ip6.arpa:53', '.:53']);
    for (const bind of blocks.binds) assert.deepEqual(bind, ['__PILLAR__LOCAL__DNS__', '__PILLAR__DNS__SERVER__']);
    assert.deepEqual(
      blocks.forwards.map((f) => f.join(' ')),
      ['. __PILLAR__CLUSTER__DNS__', '. __PILLAR__CLUSTER__DNS__', '. __PILLAR__CLUSTER__DNS__', '. __PILLAR__UPSTREAM__SERVERS__'],
    );
    assert.deepEqual(blocks.health, [{ host: '__PILLAR__LOCAL__DNS__', port: 8080 }]);
    assert.deepEqual(blocks.ready, [{ host: '__PILLAR__LOCAL__DNS__', port: 8181 }]);
    assert.ok(blocks.prometheus.every((p) => p.host === '' && p.port === 9253));
    // Without the env a listener has no port (`169.254.20.10:`, which the agent rejects): no silent defaults.
    assert.throws(() => corefileFacts(cm.data.Corefile, 'Corefile.base', {}), /not host:port/);
    // With sed's substitutions done, the agent's own templating leaves nothing behind.
    const sedded = cm.data.Corefile.replaceAll('__PILLAR__DNS__DOMAIN__', 'cluster.local')
      .replaceAll('__PILLAR__LOCAL__DNS__', '169.254.20.10')
      .replaceAll('__PILLAR__DNS__SERVER__', '10.96.0.10');
    const out = renderLikeAgent(sedded, { localIps: ['169.254.20.10', '10.96.0.10'], upstreamServiceIp: '10.96.0.20' });
    assert.deepEqual(out.warnings, []);
    assert.doesNotMatch(out.corefile, /__PILLAR__/);
  });

  test('the image tag is the package version', () => {
    const ds = findOne<DaemonSetShape>(parseManifests(TEMPLATE, 't'), 'DaemonSet');
    assert.equal(ds.spec.template.spec.containers[0]!.image, `node-local-dns:${PKG.version}`);
  });

  test('one node at a time, new pod first (maxSurge 1, maxUnavailable 0), no declared host ports to block it', () => {
    const ds = findOne<DaemonSetShape>(parseManifests(TEMPLATE, 't'), 'DaemonSet');
    assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    const c = ds.spec.template.spec.containers[0]!;
    assert.equal(c.ports, undefined);
    // The probes name the ports by number (a name would need a declared port); the peer directory is mounted.
    assert.equal(c.livenessProbe?.httpGet?.port, 8080);
    assert.equal(c.readinessProbe?.httpGet?.port, 8181);
    assert.equal(c.args?.[c.args.indexOf('-peerdir') + 1], '/run/node-local-dns');
    assert.ok(c.volumeMounts?.some((m) => m.name === 'peers' && m.mountPath === '/run/node-local-dns'));
    assert.equal(ds.spec.template.spec.volumes?.find((v) => v.name === 'peers')?.hostPath?.path, '/run/node-local-dns');
  });
});

describe('deploy/kubernetes/nodelocaldns-standby.yaml (the standby DaemonSet template)', () => {
  test('parses and validates as it stands: the standby DaemonSet and its metrics Service only', () => {
    const objs = parseManifests(STANDBY_TEMPLATE, 'nodelocaldns-standby.yaml');
    assert.deepEqual(
      objs.map((o) => `${o.kind}/${o.metadata.name}`),
      ['DaemonSet/node-local-dns-standby', 'Service/node-local-dns-standby'],
    );
    for (const o of objs) validateObject(o);
  });

  test("uses the primary template's ConfigMap and ServiceAccount, and the same image", () => {
    const primary = parseManifests(TEMPLATE, 'p');
    const standby = findOne<DaemonSetShape>(parseManifests(STANDBY_TEMPLATE, 's'), 'DaemonSet');
    const pod = standby.spec.template.spec;
    assert.equal(pod.serviceAccountName, findOne(primary, 'ServiceAccount').metadata.name);
    assert.equal(pod.volumes?.find((v) => v.name === 'config-volume')?.configMap?.name, findOne(primary, 'ConfigMap').metadata.name);
    assert.equal(pod.containers[0]!.image, `node-local-dns:${PKG.version}`);
  });

  test('its own update schedule: one node at a time, new pod first', () => {
    const ds = findOne<DaemonSetShape>(parseManifests(STANDBY_TEMPLATE, 't'), 'DaemonSet');
    assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
  });

  test('the primary and the standby with the placeholders: ports, probes and flags agree with the shared Corefile', () => {
    // Placeholders are plain words to the parser and flags parser; checkBundle needs addresses.
    const sed = (text: string): string =>
      text
        .replaceAll('__PILLAR__DNS__DOMAIN__', 'cluster.local')
        .replaceAll('__PILLAR__LOCAL__DNS__', '169.254.20.10')
        .replaceAll('__PILLAR__DNS__SERVER__', '10.96.0.10');
    const objs = [...parseManifests(sed(TEMPLATE), 'p'), ...parseManifests(sed(STANDBY_TEMPLATE), 's')];
    const { primary, standby } = checkBundle(objs, { mode: 'iptables', ...DEFAULTS, declaresPorts: false, standby: true });
    assert.deepEqual(primary.ports, { health: 8080, ready: 8181, metrics: 9253, agentMetrics: 9353 });
    assert.deepEqual(standby?.ports, { health: 8082, ready: 8182, metrics: 9254, agentMetrics: 9354 });
  });
});

for (const mode of ['iptables', 'ipvs'] as const) {
  describe(`rendered ${mode} variant`, () => {
    const rendered = renderManifest(TEMPLATE, { mode, ...DEFAULTS });
    const objs = parseManifests(rendered, mode);
    const renderedStandby = renderManifest(STANDBY_TEMPLATE, { mode, ...DEFAULTS, standby: true });
    const standbyObjs = parseManifests(renderedStandby, `${mode} standby`);

    test('committed deploy/kubernetes/<mode>/node-local-dns.yaml is up to date', () => {
      const committed = readFileSync(join(ROOT, `deploy/kubernetes/${mode}/node-local-dns.yaml`), 'utf8');
      assert.equal(
        committed,
        rendered,
        `re-run: node deploy/render.ts --mode ${mode} --dns-server 10.96.0.10 --output deploy/kubernetes/${mode}/node-local-dns.yaml`,
      );
    });

    test('committed deploy/kubernetes/<mode>/node-local-dns-standby.yaml is up to date', () => {
      const committed = readFileSync(join(ROOT, `deploy/kubernetes/${mode}/node-local-dns-standby.yaml`), 'utf8');
      assert.equal(
        committed,
        renderedStandby,
        `re-run: node deploy/render.ts --standby --mode ${mode} --dns-server 10.96.0.10 --output deploy/kubernetes/${mode}/node-local-dns-standby.yaml`,
      );
      assert.match(committed, /^# Rendered by: node deploy\/render\.ts .*--standby\n# From deploy\/kubernetes\/nodelocaldns-standby\.yaml;/);
    });

    test('schema, pod settings, flags, Corefile, ports and probes agree', () => {
      checkBundle(objs, { mode, ...DEFAULTS, declaresPorts: false });
    });

    test('with the standby: both DaemonSets agree with the shared Corefile and with each other', () => {
      const { primary, standby } = checkBundle([...objs, ...standbyObjs], { mode, ...DEFAULTS, declaresPorts: false, standby: true });
      assert.ok(standby);
      // The values docs/zero-downtime.md and the monitoring material describe.
      assert.deepEqual(primary.ports, { health: 8080, ready: 8181, metrics: 9253, agentMetrics: 9353 });
      assert.deepEqual(standby.ports, { health: 8082, ready: 8182, metrics: 9254, agentMetrics: 9354 });
      assert.equal(standby.opts.peerDir, '/run/node-local-dns');
      assert.equal(standby.container.args?.[0], '-standby');
    });

    for (const [name, path, expected] of [
      ['the template', TEMPLATE_PATH, () => objs],
      ['the standby template', STANDBY_TEMPLATE_PATH, () => standbyObjs],
    ] as const) {
      test(`equals what the install guide's sed commands make of ${name}`, () => {
        const script =
          mode === 'iptables'
            ? 's/__PILLAR__DNS__SERVER__/10.96.0.10/g\ns/__PILLAR__LOCAL__DNS__/169.254.20.10/g\ns/__PILLAR__DNS__DOMAIN__/cluster.local/g'
            : 's/__PILLAR__CLUSTER__DNS__/10.96.0.10/g\ns/__PILLAR__LOCAL__DNS__/169.254.20.10/g\ns/[ |,]__PILLAR__DNS__SERVER__//g\ns/__PILLAR__DNS__DOMAIN__/cluster.local/g';
        const sed = spawnSync('sed', [script, path], { encoding: 'utf8' });
        assert.equal(sed.status, 0, sed.stderr);
        assert.deepEqual(parseManifests(sed.stdout, 'sed'), expected());
      });
    }
  });
}

describe('deploy/render.ts', () => {
  test('other addresses and domain end up in flags, Corefile and probes', () => {
    const opts = { dnsServer: '10.100.0.10', localDns: '169.254.0.53', domain: 'k8s.example.test' };
    for (const mode of ['iptables', 'ipvs'] as const) {
      const objs = parseManifests(renderManifest(TEMPLATE, { mode, ...opts }), mode);
      checkBundle(objs, { mode, ...opts, declaresPorts: false });
      const standby = parseManifests(renderManifest(STANDBY_TEMPLATE, { mode, ...opts, standby: true }), `${mode} standby`);
      checkBundle([...objs, ...standby], { mode, ...opts, declaresPorts: false, standby: true });
    }
  });

  test('IPv6 cluster', () => {
    const opts = { dnsServer: 'fd00:10:96::a', localDns: 'fd00:169:254::10', domain: 'cluster.local' };
    for (const template of [TEMPLATE, STANDBY_TEMPLATE]) {
      const objs = parseManifests(renderManifest(template, { mode: 'iptables', ...opts }), 'v6');
      const ds = findOne<DaemonSetShape>(objs, 'DaemonSet');
      assert.deepEqual(parseOptions(ds.spec.template.spec.containers[0]!.args ?? []).localIps, [opts.localDns, opts.dnsServer]);
    }
  });

  test('--image replaces the image reference only', () => {
    for (const template of [TEMPLATE, STANDBY_TEMPLATE]) {
      const out = renderManifest(template, { mode: 'iptables', ...DEFAULTS, image: 'registry.example.test/dns/node-local-dns:1.2.3' });
      const ds = findOne<DaemonSetShape>(parseManifests(out, 'x'), 'DaemonSet');
      assert.equal(ds.spec.template.spec.containers[0]!.image, 'registry.example.test/dns/node-local-dns:1.2.3');
    }
  });

  test('rejects bad input with stable codes', () => {
    const cases: Array<[Partial<Parameters<typeof renderManifest>[1]>, string]> = [
      [{ mode: 'userspace' as Mode }, RenderErrorCode.BadMode],
      [{ dnsServer: '10.96.0' }, RenderErrorCode.BadAddress],
      [{ localDns: 'localhost' }, RenderErrorCode.BadAddress],
      [{ domain: 'Cluster.Local.' }, RenderErrorCode.BadDomain],
      [{ image: 'node-local-dns:1 \n  hostPID: true' }, RenderErrorCode.BadImage],
    ];
    for (const [override, code] of cases) {
      assert.throws(
        () => renderManifest(TEMPLATE, { mode: 'iptables', ...DEFAULTS, ...override }),
        (err: unknown) => err instanceof RenderError && err.code === code,
        JSON.stringify(override),
      );
    }
    assert.throws(
      () => renderManifest('x: __PILLAR__NEW__THING__\n', { mode: 'iptables', ...DEFAULTS }),
      (err: unknown) => err instanceof RenderError && err.code === RenderErrorCode.LeftoverPillar,
    );
  });

  test('command line: exit 2 without --dns-server or on an unknown flag, 1 on a bad value', () => {
    const node = join(ROOT, 'node_modules/.bin/node');
    const run = (args: string[]) => spawnSync(node, [join(ROOT, 'deploy/render.ts'), ...args], { encoding: 'utf8' });
    assert.equal(run([]).status, 2);
    assert.equal(run(['--dns-server', '10.96.0.10', '--bogus']).status, 2);
    assert.equal(run(['--dns-server', '10.96.0.10', '--mode', 'nft']).status, 1);
    const ok = run(['--dns-server', '10.96.0.10', '--mode', 'ipvs']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, renderManifest(TEMPLATE, { mode: 'ipvs', ...DEFAULTS }));
    // --standby renders the standby template, alone: it is applied separately, after the primary.
    const standby = run(['--dns-server', '10.96.0.10', '--mode', 'ipvs', '--standby']);
    assert.equal(standby.status, 0, standby.stderr);
    assert.equal(standby.stdout, renderManifest(STANDBY_TEMPLATE, { mode: 'ipvs', ...DEFAULTS, standby: true }));
    assert.deepEqual(
      parseManifests(standby.stdout, 'cli').map((o) => `${o.kind}/${o.metadata.name}`),
      ['DaemonSet/node-local-dns-standby', 'Service/node-local-dns-standby'],
    );
    assert.equal(renderMain(['--help']), 0);
  });
});
