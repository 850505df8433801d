/**
 * A simulated dual-stack Kubernetes node from network namespaces (test/netns/harness.ts's
 * building blocks), for the dual-stack test:
 *
 *   pod4 (169.254.1.2/24, default via .1)        pod6 (fd00:1::2/64, default via fd00:1::1)
 *      │ veth vpod4                                  │ veth vpod6
 *   node (169.254.1.1/24, fd00:1::1/64 towards the pods; 198.18.1.1/24, fd00:2::1/64 towards
 *      │  kubedns; forwarding on for both families; kube-proxy-like DNAT in iptables' and
 *      │  ip6tables' nat tables: 198.18.0.10/.11 :53 → 198.18.1.2:53, fd00::a/fd00::b :53 →
 *      │  [fd00:2::2]:53; the service ranges 198.18.0.0/24 and fd00::/112 routed to kubedns)
 *      │ veth vkdns
 *   kubedns (198.18.1.2/24, fd00:2::2/64; NSD on both addresses serving cluster.local,
 *            in-addr.arpa, ip6.arpa and example.org with A and AAAA records)
 *
 * kube-dns's service IPs: 198.18.0.10 and fd00::a; kube-dns-upstream's: 198.18.0.11 and
 * fd00::b. Addresses come only from 169.254.0.0/16, 198.18.0.0/15 and fd00::/8; IPv6 addresses
 * are added with `nodad` so they are usable at once. Everything is removed by teardown().
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, dig, installKubeProxyDns, sweepStaleNamespaces, tearDownSimulation, uniqueNsName, waitFor } from '../netns/harness.ts';

export const DUAL = {
  pod4Ip: '169.254.1.2',
  pod6Ip: 'fd00:1::2',
  nodePod4SideIp: '169.254.1.1',
  nodePod6SideIp: 'fd00:1::1',
  nodeKubeDns4Ip: '198.18.1.1',
  nodeKubeDns6Ip: 'fd00:2::1',
  kubeDns4PodIp: '198.18.1.2',
  kubeDns6PodIp: 'fd00:2::2',
  /** kube-dns's cluster IPs (both families): the pods' nameservers, taken over by node-local-dns. */
  kubeDnsService4Ip: '198.18.0.10',
  kubeDnsService6Ip: 'fd00::a',
  /** kube-dns-upstream's cluster IPs: node-local-dns's upstream for the cluster zones. */
  kubeDnsUpstream4Ip: '198.18.0.11',
  kubeDnsUpstream6Ip: 'fd00::b',
  /** The link-local addresses of the cache, one per family. */
  localDns4Ip: '169.254.20.10',
  localDns6Ip: 'fd00::10',
  serviceCidr4: '198.18.0.0/24',
  serviceCidr6: 'fd00::/112',
} as const;

/** What the stand-in answers: name → [A, AAAA]. */
export const DUAL_RECORDS = {
  'web.default.svc.cluster.local.': ['198.18.2.20', 'fd00:20::20'],
  'kubernetes.default.svc.cluster.local.': ['198.18.0.1', 'fd00::1'],
  'www.example.org.': ['198.18.5.5', 'fd00:5::5'],
} as const;

export interface DualStackNode {
  pod4: Netns;
  pod6: Netns;
  node: Netns;
  kubedns: Netns;
  dir: string;
  dnsServer: ChildProcess;
  teardown(): Promise<void>;
}

function zoneFiles(): Record<string, string> {
  const soa = (origin: string): string =>
    `$TTL 30\n$ORIGIN ${origin}\n@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30\n@ IN NS ns.dns.cluster.local.\n`;
  const records = (suffix: string): string =>
    Object.entries(DUAL_RECORDS)
      .filter(([name]) => name.endsWith(suffix))
      .map(([name, [a, aaaa]]) => `${name} IN A ${a}\n${name} IN AAAA ${aaaa}\n`)
      .join('');
  return {
    'cluster.local': `${soa('cluster.local.')}ns.dns IN A ${DUAL.kubeDns4PodIp}\nns.dns IN AAAA ${DUAL.kubeDns6PodIp}\n${records('.cluster.local.')}`,
    'in-addr.arpa': `${soa('in-addr.arpa.')}20.2.18.198 IN PTR web.default.svc.cluster.local.\n`,
    'ip6.arpa': `${soa('ip6.arpa.')}0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.0.d.f IN PTR web.default.svc.cluster.local.\n`,
    'example.org': `${soa('example.org.')}${records('.example.org.')}`,
  };
}

/** Builds the namespaces, links, routes, kube-proxy's DNAT for both families, and starts NSD. */
export async function createDualStackNode(): Promise<DualStackNode> {
  await sweepStaleNamespaces();
  const created: Netns[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'nld-dual-'));
  let dnsServer: ChildProcess | undefined;

  const teardown = (): Promise<void> => tearDownSimulation(created, dir, dnsServer);

  try {
    const mk = async (role: string): Promise<Netns> => {
      const ns = await Netns.create(uniqueNsName(role));
      created.push(ns);
      return ns;
    };
    const pod4 = await mk('pod4');
    const pod6 = await mk('pod6');
    const node = await mk('node');
    const kubedns = await mk('kubedns');

    await node.exec('ip', ['link', 'add', 'vpod4', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod4.name]);
    await node.exec('ip', ['link', 'add', 'vpod6', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod6.name]);
    await node.exec('ip', ['link', 'add', 'vkdns', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', kubedns.name]);

    await pod4.exec('ip', ['addr', 'add', `${DUAL.pod4Ip}/24`, 'dev', 'eth0']);
    await pod4.exec('ip', ['link', 'set', 'eth0', 'up']);
    await pod4.exec('ip', ['route', 'add', 'default', 'via', DUAL.nodePod4SideIp]);

    await pod6.exec('ip', ['-6', 'addr', 'add', `${DUAL.pod6Ip}/64`, 'dev', 'eth0', 'nodad']);
    await pod6.exec('ip', ['link', 'set', 'eth0', 'up']);
    await pod6.exec('ip', ['-6', 'route', 'add', 'default', 'via', DUAL.nodePod6SideIp]);

    await kubedns.exec('ip', ['addr', 'add', `${DUAL.kubeDns4PodIp}/24`, 'dev', 'eth0']);
    await kubedns.exec('ip', ['-6', 'addr', 'add', `${DUAL.kubeDns6PodIp}/64`, 'dev', 'eth0', 'nodad']);
    await kubedns.exec('ip', ['link', 'set', 'eth0', 'up']);
    await kubedns.exec('ip', ['route', 'add', 'default', 'via', DUAL.nodeKubeDns4Ip]);
    await kubedns.exec('ip', ['-6', 'route', 'add', 'default', 'via', DUAL.nodeKubeDns6Ip]);

    await node.exec('ip', ['addr', 'add', `${DUAL.nodePod4SideIp}/24`, 'dev', 'vpod4']);
    await node.exec('ip', ['-6', 'addr', 'add', `${DUAL.nodePod6SideIp}/64`, 'dev', 'vpod6', 'nodad']);
    await node.exec('ip', ['addr', 'add', `${DUAL.nodeKubeDns4Ip}/24`, 'dev', 'vkdns']);
    await node.exec('ip', ['-6', 'addr', 'add', `${DUAL.nodeKubeDns6Ip}/64`, 'dev', 'vkdns', 'nodad']);
    for (const l of ['vpod4', 'vpod6', 'vkdns']) await node.exec('ip', ['link', 'set', l, 'up']);
    // The service ranges are routed towards the cluster (kube-proxy DNATs them before they leave).
    await node.exec('ip', ['route', 'add', DUAL.serviceCidr4, 'via', DUAL.kubeDns4PodIp]);
    await node.exec('ip', ['-6', 'route', 'add', DUAL.serviceCidr6, 'via', DUAL.kubeDns6PodIp]);
    await node.exec('sysctl', [
      '-qw',
      'net.ipv4.ip_forward=1',
      'net.ipv6.conf.all.forwarding=1',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0',
    ]);

    // kube-proxy (iptables mode) for the two DNS services, in both families.
    for (const [bin, services, endpoint] of [
      [
        'iptables',
        [
          ['kube-system/kube-dns', `${DUAL.kubeDnsService4Ip}/32`],
          ['kube-system/kube-dns-upstream', `${DUAL.kubeDnsUpstream4Ip}/32`],
        ],
        `${DUAL.kubeDns4PodIp}:53`,
      ],
      [
        'ip6tables',
        [
          ['kube-system/kube-dns', `${DUAL.kubeDnsService6Ip}/128`],
          ['kube-system/kube-dns-upstream', `${DUAL.kubeDnsUpstream6Ip}/128`],
        ],
        `[${DUAL.kubeDns6PodIp}]:53`,
      ],
    ] as const) {
      await installKubeProxyDns(node, bin, services, endpoint);
    }

    // The kube-dns stand-in: NSD on both families.
    const zones = zoneFiles();
    for (const [z, text] of Object.entries(zones)) await writeFile(join(dir, `${z}.zone`), text);
    const conf =
      'server:\n' +
      `  ip-address: ${DUAL.kubeDns4PodIp}\n  ip-address: ${DUAL.kubeDns6PodIp}\n  port: 53\n  username: ""\n  chroot: ""\n` +
      `  zonesdir: "${dir}"\n  database: ""\n  pidfile: "${dir}/nsd.pid"\n  xfrdfile: "${dir}/xfrd.state"\n` +
      `  zonelistfile: "${dir}/zone.list"\n  xfrdir: "${dir}"\n  logfile: "${dir}/nsd.log"\n` +
      '  verbosity: 1\n  rrl-ratelimit: 0\n  server-count: 1\n  reuseport: no\n' +
      'remote-control:\n  control-enable: no\n' +
      Object.keys(zones)
        .map((z) => `zone:\n  name: ${z}\n  zonefile: ${z}.zone\n`)
        .join('');
    await writeFile(join(dir, 'nsd.conf'), conf);
    dnsServer = kubedns.spawn('nsd', ['-d', '-c', join(dir, 'nsd.conf')], { stdio: 'ignore' });
    for (const server of [DUAL.kubeDns4PodIp, DUAL.kubeDns6PodIp]) {
      await waitFor(`NSD on ${server}`, async () => {
        const r = await dig(kubedns, server, 'web.default.svc.cluster.local', 'AAAA', { timeoutSec: 1 });
        return r.status === 'NOERROR' && r.answers.length === 1;
      });
    }
    return { pod4, pod6, node, kubedns, dir, dnsServer, teardown };
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }
}
