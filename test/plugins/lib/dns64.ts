/**
 * Shared by the dns64 end-to-end and compatibility tests: a Knot zone with names that have
 * only A records, both families, a CNAME to an A-only name, no address at all; and an agent
 * with one server block per configuration, each on its own port of 127.0.0.x and ::1.
 */
import { freeEndpoint, startAgent, startKnot, type AgentProcess, type Authority } from '../../engine/harness.ts';

/** Knot puts the SOA in NODATA answers with TTL min(SOA TTL, MINIMUM) = 60: synthesized TTLs are min(A TTL, 60). */
export const DNS64_ZONE = `$ORIGIN dns64.test.
$TTL 300
@        120 IN SOA ns.dns64.test. admin.dns64.test. 1 7200 900 1209600 60
@        IN NS  ns
ns       IN A   127.0.0.1
v4only   IN A   192.0.2.1
v4only   IN A   192.0.2.2
short    30 IN A 198.51.100.7
dual     IN A   192.0.2.3
dual     IN AAAA 2001:db8::3
alias    IN CNAME v4only
txtonly  IN TXT "no address"
`;

export function startDns64Knot(): Promise<Authority> {
  return startKnot({ 'dns64.test': DNS64_ZONE });
}

export interface Dns64Block {
  /** Lines inside the block (before forward). */
  body: string;
  /** Filled in by startDns64Agent: where the block listens. */
  v4?: string;
  port?: number;
}

/**
 * One agent, one block per entry (`.:PORT { bind HOST ::1; <body>; forward . knot }`), plus a
 * prometheus listener in the first block. Ports come from freeEndpoint (127.0.0.x); ::1 shares them.
 */
export async function startDns64Agent(
  knot: Authority,
  blocks: Dns64Block[],
  extra = '',
): Promise<{ agent: AgentProcess; metrics: { host: string; port: number } }> {
  let text = '';
  let metrics: { host: string; port: number } | null = null;
  for (const b of blocks) {
    const { host, port } = await freeEndpoint();
    b.v4 = host;
    b.port = port;
    if (metrics === null) metrics = await freeEndpoint(host);
    const prom = text === '' ? `    prometheus ${metrics.host}:${metrics.port}\n` : '';
    text += `.:${port} {\n    bind ${host} ::1\n${prom}${b.body}\n${extra}    forward . ${knot.addr}\n}\n`;
  }
  const agent = await startAgent(text);
  return { agent, metrics: metrics! };
}
