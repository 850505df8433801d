/** For the log tests: Knot with one zone (l.test) and an agent whose block is given; the log lines it printed. */
import { freeEndpoint, startAgent, startKnot, type AgentProcess, type Authority } from '../../engine/harness.ts';

export const L_ZONE = `$ORIGIN l.test.
$TTL 300
@ IN SOA ns.l.test. admin.l.test. 1 7200 900 1209600 60
@ IN NS ns
ns IN A 127.0.0.1
www IN A 192.0.2.10
v6 IN AAAA 2001:db8::10
`;

export async function startLogKnot(): Promise<Authority> {
  return startKnot({ 'l.test': L_ZONE });
}

/** `.:PORT { bind HOST ::1; BODY; forward . knot }`. */
export async function startLogAgent(knot: Authority, body: string): Promise<{ agent: AgentProcess; host: string; port: number }> {
  const { host, port } = await freeEndpoint();
  const agent = await startAgent(`.:${port} {\n    bind ${host} ::1\n${body}\n    forward . ${knot.addr}\n}\n`);
  return { agent, host, port };
}

/** The [INFO] query-log lines printed so far (not the start-up lines). */
export function logLines(agent: AgentProcess): string[] {
  return agent
    .output()
    .split('\n')
    .filter((l) => l.startsWith('[INFO] ') && !/\(udp, tcp\)$| serving$|^\[INFO\] UDP I\/O: /.test(l));
}
