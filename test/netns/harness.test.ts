import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execRunner } from '../../src/agent/exec.ts';
import { SIM, createSimNode, dig, netnsSkipReason, savedRules } from './harness.ts';

const skip = netnsSkipReason({ nsd: true });

test('simulated node: kube-proxy DNAT delivers pod queries to kube-dns; teardown removes everything', { skip }, async (t) => {
  const sim = await createSimNode();
  let tornDown = false;
  t.after(async () => {
    if (!tornDown) await sim.teardown();
  });

  // Through the kube-dns service IP (DNAT in node's PREROUTING), UDP and TCP.
  for (const tcp of [false, true]) {
    const r = await dig(sim.pod, SIM.kubeDnsServiceIp, 'kubernetes.default.svc.cluster.local', 'A', { tcp });
    assert.equal(r.status, 'NOERROR', r.raw);
    assert.deepEqual(r.answers, ['kubernetes.default.svc.cluster.local. 30 IN A 198.18.0.1']);
  }
  const ptr = await dig(sim.pod, SIM.kubeDnsServiceIp, '10.0.18.198.in-addr.arpa', 'PTR');
  assert.deepEqual(ptr.answers, ['10.0.18.198.in-addr.arpa. 30 IN PTR kube-dns.kube-system.svc.cluster.local.']);
  // Through kube-dns-upstream from the node itself (DNAT in node's OUTPUT).
  const ext = await dig(sim.node, SIM.kubeDnsUpstreamServiceIp, 'www.example.org', 'A');
  assert.deepEqual(ext.answers, ['www.example.org. 30 IN A 198.18.5.5']);
  // Nothing listens on the link-local address yet.
  const none = await dig(sim.pod, SIM.localDnsIp, 'www.example.org', 'A', { timeoutSec: 1 });
  assert.notEqual(none.status, 'NOERROR');

  const nat = savedRules(await sim.node.iptablesSave(), 'nat');
  assert.equal(nat.filter((l) => l.includes('-j DNAT')).length, 4);

  const names = [sim.pod.name, sim.node.name, sim.kubedns.name];
  await sim.teardown();
  tornDown = true;
  const list = (await execRunner('ip', ['netns', 'list'])).stdout;
  for (const n of names) assert.ok(!list.split('\n').some((l) => l.split(' ')[0] === n), `${n} still exists`);
});
