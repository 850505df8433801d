import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createScratchNetns, netnsSkipReason, type Netns } from '../../test/netns/harness.ts';
import { InterfaceError, InterfaceManager, canonicalIp, isUnsupportedLinkType } from './iface.ts';

const skip = netnsSkipReason();

async function withNetns(t: { after(fn: () => Promise<void>): void }): Promise<Netns> {
  const ns = await createScratchNetns('if');
  t.after(() => ns.delete());
  return ns;
}

async function linkKind(ns: Netns, name: string): Promise<string | undefined> {
  const out = JSON.parse(await ns.exec('ip', ['-d', '-j', 'link', 'show', 'dev', name])) as { linkinfo?: { info_kind?: string } }[];
  return out[0]?.linkinfo?.info_kind;
}

test('canonicalIp and unsupported-type detection', () => {
  assert.equal(canonicalIp('169.254.20.10'), '169.254.20.10');
  assert.equal(canonicalIp('FD00:0:0::10'), 'fd00::10');
  assert.throws(() => canonicalIp('nope'), InterfaceError);
  assert.ok(isUnsupportedLinkType('Error: Unknown device type.\n'));
  assert.ok(isUnsupportedLinkType('RTNETLINK answers: Operation not supported\n'));
  assert.ok(!isUnsupportedLinkType('RTNETLINK answers: File exists\n'));
});

test('bridge interface: create with /32 addresses, idempotent, repairs a lost address, removal', { skip }, async (t) => {
  const ns = await withNetns(t);
  const m = new InterfaceManager({ name: 'nodelocaldns', type: 'bridge', ips: ['169.254.20.10', '198.18.0.10'] }, ns.run);

  assert.equal(await m.exists(), false);
  assert.deepEqual(await m.ensure(), { created: true, addedAddrs: ['169.254.20.10', '198.18.0.10'] });
  assert.equal(await linkKind(ns, 'nodelocaldns'), 'bridge');
  assert.deepEqual(await m.addresses(), ['169.254.20.10/32', '198.18.0.10/32']);
  // The kernel treats the addresses as local even though the link is down.
  assert.match(await ns.exec('ip', ['route', 'get', '198.18.0.10']), /^local 198\.18\.0\.10 /);

  assert.deepEqual(await m.ensure(), { created: false, addedAddrs: [] });

  await ns.exec('ip', ['addr', 'del', '198.18.0.10/32', 'dev', 'nodelocaldns']);
  assert.deepEqual(await m.ensure(), { created: false, addedAddrs: ['198.18.0.10'] });
  assert.deepEqual(await m.addresses(), ['169.254.20.10/32', '198.18.0.10/32']);

  assert.equal(await m.remove(), true);
  assert.equal(await m.exists(), false);
  assert.equal(await m.remove(), false);
});

test('IPv6 local IPs get /128 host addresses', { skip }, async (t) => {
  const ns = await withNetns(t);
  const m = new InterfaceManager({ name: 'nld6', type: 'bridge', ips: ['fd00::10', 'FD00::11'] }, ns.run);
  assert.deepEqual(await m.ensure(), { created: true, addedAddrs: ['fd00::10', 'FD00::11'] });
  const addrs = (await m.addresses())!.filter((a) => !a.startsWith('fe80')).sort();
  assert.deepEqual(addrs, ['fd00::10/128', 'fd00::11/128']);
  assert.deepEqual(await m.ensure(), { created: false, addedAddrs: [] }, 'case differences do not re-add');
});

test('dummy on a kernel without the dummy link type: clear ERR_IFACE_UNSUPPORTED', { skip }, async (t) => {
  const ns = await withNetns(t);
  // Only meaningful where the kernel really lacks the type (as on this project's machines).
  const probe = await ns.run('ip', ['link', 'add', 'probe0', 'type', 'dummy']);
  if (probe.code === 0) {
    await ns.exec('ip', ['link', 'del', 'probe0']);
    t.skip('this kernel supports dummy links');
    return;
  }
  const m = new InterfaceManager({ name: 'nodelocaldns', type: 'dummy', ips: ['169.254.20.10'] }, ns.run);
  await assert.rejects(m.ensure(), (e: unknown) => {
    assert.ok(e instanceof InterfaceError);
    assert.equal(e.code, 'ERR_IFACE_UNSUPPORTED');
    assert.match(e.message, /no "dummy" link type/);
    assert.match(e.message, /dummy module/);
    assert.match(e.message, /Unknown device type/);
    assert.match(e.message, /-setupinterface=false/);
    assert.match(e.message, /-interfacetype=bridge/);
    return true;
  });
  assert.equal(await m.exists(), false);
});

test('dual-stack: one interface holds both families (IPv6 with nodad), a lost IPv6 address is put back', { skip }, async (t) => {
  const ns = await withNetns(t);
  const ips = ['169.254.20.10', 'fd00::10', '198.18.0.10', 'fd00::a'];
  const m = new InterfaceManager({ name: 'nodelocaldns', type: 'bridge', ips }, ns.run);
  assert.deepEqual(await m.ensure(), { created: true, addedAddrs: ips });
  const global = async () => (await m.addresses())!.filter((a) => !a.startsWith('fe80')).sort();
  assert.deepEqual(await global(), ['169.254.20.10/32', '198.18.0.10/32', 'fd00::10/128', 'fd00::a/128']);
  const shown = await ns.exec('ip', ['-6', 'addr', 'show', 'dev', 'nodelocaldns']);
  assert.match(shown, /inet6 fd00::10\/128 scope global nodad/);
  assert.doesNotMatch(shown, /tentative/, 'usable at once: no duplicate address detection');
  await ns.exec('ip', ['-6', 'addr', 'del', 'fd00::a/128', 'dev', 'nodelocaldns']);
  assert.deepEqual(await m.ensure(), { created: false, addedAddrs: ['fd00::a'] });
  assert.deepEqual(await global(), ['169.254.20.10/32', '198.18.0.10/32', 'fd00::10/128', 'fd00::a/128']);
  assert.equal(await m.remove(), true);
});
