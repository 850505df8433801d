import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandResult } from './exec.ts';
import { IptablesManager } from './iptables.ts';
import { NftablesManager } from './nftables.ts';
import { chooseRulesBackend, createRulesBackend, onPath } from './rules.ts';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

test('rules: explicit back ends are taken as given, without running anything', async () => {
  const runner = async (): Promise<CommandResult> => {
    throw new Error('must not run');
  };
  assert.deepEqual(await chooseRulesBackend('iptables', { runner, families: [4] }), { kind: 'iptables', reason: '-rulesbackend iptables' });
  assert.deepEqual(await chooseRulesBackend('nftables', { runner, families: [4] }), { kind: 'nftables', reason: '-rulesbackend nftables' });
  const o = { localIps: ['169.254.20.10'], dnsPort: 53, healthPort: 8080, log: quiet };
  assert.ok(createRulesBackend('iptables', o) instanceof IptablesManager);
  assert.ok(createRulesBackend('nftables', o) instanceof NftablesManager);
  assert.equal(createRulesBackend('nftables', o).describe(), 'nftables table inet node-local-dns (12 rules)');
  assert.equal(createRulesBackend('iptables', o).describe(), '12 iptables rules');
});

test('rules: auto picks nftables for a kube-proxy table of any family, or without an iptables binary', async () => {
  const bin = await mkdtemp(join(tmpdir(), 'nld-path-'));
  const empty = await mkdtemp(join(tmpdir(), 'nld-path-'));
  try {
    await writeFile(join(bin, 'iptables'), '#!/bin/sh\n');
    await chmod(join(bin, 'iptables'), 0o755);
    await writeFile(join(bin, 'ip6tables'), '#!/bin/sh\n'); // not executable: does not count
    assert.equal(await onPath('iptables', `${empty}:${bin}`), true);
    assert.equal(await onPath('ip6tables', `${empty}:${bin}`), false);

    const tables = (stdout: string) => async (): Promise<CommandResult> => ({ code: 0, stdout, stderr: '' });
    assert.deepEqual(await chooseRulesBackend('auto', { runner: tables('table ip filter\ntable ip6 kube-proxy\n'), families: [4], path: bin }), {
      kind: 'nftables',
      reason: 'auto: kube-proxy runs in nftables mode (table ip6 kube-proxy exists)',
    });
    assert.deepEqual(await chooseRulesBackend('auto', { runner: tables('table ip filter\ntable ip kube-proxy-old\n'), families: [4], path: bin }), {
      kind: 'iptables',
      reason: 'auto: no kube-proxy nftables table; iptables is installed',
    });
    assert.deepEqual(await chooseRulesBackend('auto', { runner: tables(''), families: [4], path: empty }), {
      kind: 'nftables',
      reason: 'auto: no iptables binary on PATH (no kube-proxy nftables table)',
    });
    assert.deepEqual(await chooseRulesBackend('auto', { runner: tables(''), families: [6], path: bin }), {
      kind: 'nftables',
      reason: 'auto: no ip6tables binary on PATH (no kube-proxy nftables table)',
    });
    // Dual-stack needs both binaries: ip6tables is not executable in `bin`.
    assert.deepEqual(await chooseRulesBackend('auto', { runner: tables(''), families: [4, 6], path: bin }), {
      kind: 'nftables',
      reason: 'auto: no ip6tables binary on PATH (no kube-proxy nftables table)',
    });
    await chmod(join(bin, 'ip6tables'), 0o755);
    assert.deepEqual(await chooseRulesBackend('auto', { runner: tables(''), families: [4, 6], path: bin }), {
      kind: 'iptables',
      reason: 'auto: no kube-proxy nftables table; iptables and ip6tables are installed',
    });
    const noNft = async (): Promise<CommandResult> => {
      throw new Error('cannot run nft: spawn nft ENOENT');
    };
    assert.deepEqual(await chooseRulesBackend('auto', { runner: noNft, families: [4], path: bin }), {
      kind: 'iptables',
      reason: 'auto: nft not usable: cannot run nft: spawn nft ENOENT; iptables is installed',
    });
  } finally {
    await rm(bin, { recursive: true, force: true });
    await rm(empty, { recursive: true, force: true });
  }
});
