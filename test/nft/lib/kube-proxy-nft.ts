/**
 * A kube-proxy-like nftables ruleset for the simulated node (test/netns/harness.ts): what
 * kube-proxy's nftables mode (Kubernetes 1.33 GA) programs for the kube-dns Services, reduced to
 * the parts that decide where DNS packets go. `table ip kube-proxy` with
 *  - nat chains at dstnat priority (prerouting and output) jumping to `services`, which looks the
 *    destination up in a verdict map (ip . l4proto . port) and jumps to the service chain, whose
 *    endpoint chain DNATs to the kube-dns stand-in;
 *  - filter chains (`ct state new` only, as kube-proxy's) that count the new connections to
 *    service IPs they see, so a test can tell whether a packet was tracked and reached kube-proxy.
 *
 * The harness builds kube-proxy in iptables mode; replaceWithNftKubeProxy() removes those rules
 * (with iptables, whatever its back end) and installs this table instead.
 */
import type { SimNode } from '../../netns/harness.ts';
import { SIM } from '../../netns/harness.ts';

export const KUBE_PROXY_TABLE = 'ip kube-proxy';

export function kubeProxyScript(services: readonly { ip: string; name: string }[], endpoint: string): string {
  const elements: string[] = [];
  let chains = '';
  for (const s of services) {
    for (const proto of ['udp', 'tcp']) {
      const svc = `service-${s.name}-${proto}`;
      const ep = `endpoint-${s.name}-${proto}`;
      elements.push(`${s.ip} . ${proto} . 53 : goto ${svc}`);
      chains += `\tchain ${svc} {\n\t\tip daddr ${s.ip} ${proto} dport 53 jump mark-for-masquerade\n\t\tgoto ${ep}\n\t}\n`;
      chains += `\tchain ${ep} {\n\t\tmeta l4proto ${proto} dnat to ${endpoint}:53\n\t}\n`;
    }
  }
  return `table ${KUBE_PROXY_TABLE}
delete table ${KUBE_PROXY_TABLE}
table ${KUBE_PROXY_TABLE} {
\tcomment "rules for kube-proxy (test stand-in)"
\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { ${elements.join(', ')} }
\t}
\tcounter new-to-services { }
\tchain mark-for-masquerade {
\t\tmeta mark set meta mark | 0x4000
\t}
\tchain services {
\t\tip daddr . meta l4proto . th dport vmap @service-ips
\t}
\tchain nat-prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tjump services
\t}
\tchain nat-output {
\t\ttype nat hook output priority -100; policy accept;
\t\tjump services
\t}
\tchain filter-prerouting {
\t\ttype filter hook prerouting priority dstnat - 10; policy accept;
\t\tct state new ip daddr ${SIM.serviceCidr} counter name new-to-services
\t}
\tchain filter-output {
\t\ttype filter hook output priority -110; policy accept;
\t\tct state new ip daddr ${SIM.serviceCidr} counter name new-to-services
\t}
${chains}}
`;
}

/** Removes the harness's iptables kube-proxy rules and installs the nftables table instead. */
export async function replaceWithNftKubeProxy(sim: SimNode): Promise<void> {
  for (const chain of ['PREROUTING', 'OUTPUT']) {
    await sim.node.exec('iptables', ['-w', '5', '-t', 'nat', '-D', chain, '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']);
  }
  await sim.node.exec('iptables', ['-w', '5', '-t', 'nat', '-F', 'KUBE-SERVICES']);
  await sim.node.exec('iptables', ['-w', '5', '-t', 'nat', '-X', 'KUBE-SERVICES']);
  const script = kubeProxyScript(
    [
      { ip: SIM.kubeDnsServiceIp, name: 'kube-dns' },
      { ip: SIM.kubeDnsUpstreamServiceIp, name: 'kube-dns-upstream' },
    ],
    SIM.kubeDnsPodIp,
  );
  const r = await sim.node.run('nft', ['-f', '-'], { input: script });
  if (r.code !== 0) throw new Error(`nft -f - (kube-proxy table) failed: ${r.stderr}\n${script}`);
}

/** kube-proxy's count of new connections to service IPs (its filter chains see tracked flows only). */
export async function newToServices(sim: SimNode): Promise<number> {
  const out = await sim.node.exec('nft', ['-j', 'list', 'counter', 'ip', 'kube-proxy', 'new-to-services']);
  const doc = JSON.parse(out) as { nftables: { counter?: { packets: number } }[] };
  return doc.nftables.find((x) => x.counter)?.counter?.packets ?? -1;
}
