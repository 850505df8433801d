import assert from 'node:assert/strict';
import { rawQuery, udpExchange } from '../../engine/harness.ts';
import { decodeMessage } from '../../../src/wire/codec.ts';

/** The zones the loadbalance and whoami end-to-end tests serve from Knot. */
export const LB_ZONE = `$ORIGIN lb.test.
$TTL 300
@      IN SOA ns admin 1 3600 600 86400 60
@      IN NS  ns
ns     IN A   192.0.2.53
${[1, 2, 3, 4, 5, 6].map((i) => `multi  IN A   192.0.2.${i}`).join('\n')}
${[1, 2, 3, 4].map((i) => `multi  IN AAAA 2001:db8::${i}`).join('\n')}
alias  IN CNAME multi
chain  IN CNAME alias
@      IN MX  10 mx1
@      IN MX  20 mx2
@      IN MX  30 mx3
mx1    IN A   192.0.2.101
mx2    IN A   192.0.2.102
mx3    IN A   192.0.2.103
single IN A   192.0.2.99
@      IN TXT "not shuffled"
pref   IN A   172.16.0.1
pref   IN A   192.168.1.10
pref   IN A   172.16.0.2
pref   IN A   10.9.20.30
pref   IN A   172.16.0.3
`;

/** The zone of loadbalance's README weighted example. */
export const EXAMPLE_COM = `$ORIGIN example.com.
$TTL 300
@   IN SOA ns admin 1 3600 600 86400 60
@   IN NS  ns
ns  IN A   192.0.2.53
www IN A   100.64.1.1
www IN A   100.64.1.2
www IN A   100.64.1.3
`;

/** How often each address is the first A record over n raw UDP queries. */
export async function topCounts(host: string, port: number, name: string, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = await udpExchange(host, port, rawQuery(name, 1, i & 0xffff));
    assert.ok(r !== null, 'answered');
    const m = decodeMessage(r);
    assert.equal(m.answer.length, 3);
    const top = m.answer[0]!.data as string;
    counts.set(top, (counts.get(top) ?? 0) + 1);
  }
  return counts;
}
