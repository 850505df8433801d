/**
 * The image's scripts and Dockerfile, each part exercised on its own (test/image/ builds the
 * whole image with podman and runs it on a simulated node):
 *  - docker/iptables-wrapper.sh: back-end choice with fake iptables-{legacy,nft}-save in a
 *    scratch tree (update-alternatives --root keeps the real system untouched), and with the
 *    real iptables binaries inside network namespaces made for the test;
 *  - docker/entrypoint.sh: execs the agent (same PID, signals arrive), runs other commands;
 *  - Dockerfile/.dockerignore: base image, production dependencies, exec-form entrypoint.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ROOT } from './lib/k8s.ts';
import { shippedNodeFlags } from '../../bench/lib/servers.ts';

const WRAPPER = join(ROOT, 'docker/iptables-wrapper.sh');
const ENTRYPOINT = join(ROOT, 'docker/entrypoint.sh');
const NODE = join(ROOT, 'node_modules/.bin/node');

const scratch: string[] = [];
after(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(d);
  return d;
}

function writeExecutable(path: string, body: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `#!/bin/sh\n${body}`);
  chmodSync(path, 0o755);
}

type Mode = 'legacy' | 'nft';
type Family = 'iptables' | 'ip6tables';

interface FakeTree {
  root: string;
  /** Directory with iptables, iptables-save, ... symlinked to the wrapper (what PATH finds). */
  bin: string;
  /** Every call of a fake binary, one line each: "<name> <args>". */
  callLog: string;
}

/**
 * A filesystem root with Debian's layout: /usr/sbin/{iptables,ip6tables}-{legacy,nft}[-save|-restore]
 * as fakes, registered as alternatives (legacy priority 10, nft 20, as Debian's iptables package),
 * and the wrapper installed over them with `iptables-wrapper --install`.
 * rules[family-mode] is what that back end's -save prints.
 */
function fakeTree(rules: Partial<Record<`${Family}-${Mode}`, string>>, opts: { version?: string; withoutNft?: boolean } = {}): FakeTree {
  const root = tempDir('nld-ipt-');
  const sbin = join(root, 'usr/sbin');
  const callLog = join(root, 'calls.log');
  mkdirSync(join(root, 'etc/alternatives'), { recursive: true });
  mkdirSync(join(root, 'var/lib/dpkg/alternatives'), { recursive: true });
  mkdirSync(join(root, 'rules'), { recursive: true });
  writeFileSync(callLog, '');
  for (const mode of ['legacy', 'nft'] as const) {
    if (mode === 'nft' && opts.withoutNft === true) continue;
    for (const family of ['iptables', 'ip6tables'] as const) {
      const ruleFile = join(root, 'rules', `${family}-${mode}`);
      writeFileSync(ruleFile, rules[`${family}-${mode}`] ?? '');
      const label = mode === 'nft' ? 'nf_tables' : 'legacy';
      writeExecutable(
        join(sbin, `${family}-${mode}`),
        `echo "$(basename "$0") $*" >> '${callLog}'\n` +
          `if [ "\${1:-}" = --version ]; then echo "${family} ${opts.version ?? 'v1.8.9'} (${label})"; exit 0; fi\n` +
          `echo "ran $(basename "$0") $*"\n`,
      );
      writeExecutable(join(sbin, `${family}-${mode}-save`), `echo "$(basename "$0") $*" >> '${callLog}'\ncat '${ruleFile}'\n`);
      writeExecutable(join(sbin, `${family}-${mode}-restore`), `echo "$(basename "$0") $*" >> '${callLog}'\necho "ran $(basename "$0") $*"\n`);
    }
  }
  for (const family of ['iptables', 'ip6tables'] as const) {
    for (const [mode, prio] of [
      ['legacy', '10'],
      ['nft', '20'],
    ] as const) {
      if (mode === 'nft' && opts.withoutNft === true) continue;
      execFileSync('update-alternatives', [
        '--root',
        root,
        '--quiet',
        '--install',
        `/usr/sbin/${family}`,
        family,
        `/usr/sbin/${family}-${mode}`,
        prio,
        '--slave',
        `/usr/sbin/${family}-save`,
        `${family}-save`,
        `/usr/sbin/${family}-${mode}-save`,
        '--slave',
        `/usr/sbin/${family}-restore`,
        `${family}-restore`,
        `/usr/sbin/${family}-${mode}-restore`,
      ]);
    }
  }
  writeFileSync(join(sbin, 'iptables-wrapper'), readFileSync(WRAPPER));
  chmodSync(join(sbin, 'iptables-wrapper'), 0o755);
  const bin = join(root, 'bin');
  mkdirSync(bin);
  for (const name of ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore', 'iptables-wrapper']) {
    symlinkSync(join(sbin, 'iptables-wrapper'), join(bin, name));
  }
  return { root, bin, callLog };
}

function runIn(tree: FakeTree, name: string, args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(tree.bin, name), args, {
    env: { PATH: `${tree.bin}:${join(tree.root, 'usr/sbin')}:/usr/bin:/bin:/usr/sbin:/sbin`, IPTABLES_WRAPPER_ROOT: tree.root, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Where an alternative group's master link points inside the tree (link text, not resolved). */
function alternative(tree: FakeTree, group: string): string {
  return readlinkSync(join(tree.root, 'etc/alternatives', group));
}

function rulesText(n: number, extraChains = ''): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', extraChains];
  for (let i = 0; i < n; i++) lines.push(`-A INPUT -s 198.18.0.${i}/32 -j ACCEPT`);
  lines.push('COMMIT');
  return `${lines.filter((l) => l !== '').join('\n')}\n`;
}

describe('iptables-wrapper.sh: back-end choice', () => {
  test('--install makes the wrapper the preferred alternative for all six commands', () => {
    const tree = fakeTree({});
    const r = runIn(tree, 'iptables-wrapper', ['--install']);
    assert.equal(r.status, 0, r.stderr);
    for (const name of ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore']) {
      assert.equal(alternative(tree, name), '/usr/sbin/iptables-wrapper', name);
    }
  });

  test('more legacy rules: legacy, alternatives repointed, the call goes to iptables-legacy', () => {
    const tree = fakeTree({ 'iptables-legacy': rulesText(12), 'iptables-nft': rulesText(3) });
    assert.equal(runIn(tree, 'iptables-wrapper', ['--install']).status, 0);
    const r = runIn(tree, 'iptables', ['-t', 'raw', '-S']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'ran iptables-legacy -t raw -S\n');
    assert.match(r.stderr, /legacy has 12 rules, nft has 3: using legacy/);
    assert.equal(alternative(tree, 'iptables'), '/usr/sbin/iptables-legacy');
    assert.equal(alternative(tree, 'iptables-save'), '/usr/sbin/iptables-legacy-save');
    assert.equal(alternative(tree, 'iptables-restore'), '/usr/sbin/iptables-legacy-restore');
    assert.equal(alternative(tree, 'ip6tables'), '/usr/sbin/ip6tables-legacy');
  });

  test('more nft rules: nft', () => {
    const tree = fakeTree({ 'iptables-legacy': rulesText(2), 'iptables-nft': rulesText(40) });
    runIn(tree, 'iptables-wrapper', ['--install']);
    const r = runIn(tree, 'iptables-save', ['-t', 'nat']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\*filter\n/, 'iptables-save output comes from the nft ruleset');
    assert.match(readFileSync(tree.callLog, 'utf8'), /^iptables-nft-save -t nat$/m);
    assert.equal(alternative(tree, 'iptables'), '/usr/sbin/iptables-nft');
    assert.equal(alternative(tree, 'ip6tables-save'), '/usr/sbin/ip6tables-nft-save');
  });

  test('IPv6 rules count as well', () => {
    const tree = fakeTree({ 'ip6tables-legacy': rulesText(5), 'iptables-nft': rulesText(1) });
    assert.equal(runIn(tree, 'iptables-wrapper', ['--detect']).stdout, 'legacy\n');
  });

  test('no rules anywhere: nft', () => {
    const tree = fakeTree({});
    const r = runIn(tree, 'iptables-wrapper', ['--detect']);
    assert.equal(r.stdout, 'nft\n');
    assert.match(r.stderr, /legacy has 0 rules, nft has 0: using nft/);
  });

  test('equal counts: nft', () => {
    const tree = fakeTree({ 'iptables-legacy': rulesText(4), 'iptables-nft': rulesText(4) });
    assert.equal(runIn(tree, 'iptables-wrapper', ['--detect']).stdout, 'nft\n');
  });

  test("kubelet's hint chain in the nft mangle table wins over rule counts", () => {
    const tree = fakeTree({
      'iptables-legacy': rulesText(30),
      'iptables-nft': '*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n',
    });
    const r = runIn(tree, 'iptables-wrapper', ['--detect']);
    assert.equal(r.stdout, 'nft\n');
    assert.match(r.stderr, /hint chain found in the nft ruleset/);
    assert.match(readFileSync(tree.callLog, 'utf8'), /^iptables-nft-save -t mangle$/m);
  });

  test("kubelet's canary chain in the legacy ruleset: legacy even with more nft rules", () => {
    const tree = fakeTree({
      'iptables-legacy': '*mangle\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n',
      'iptables-nft': rulesText(25),
    });
    assert.equal(runIn(tree, 'iptables-wrapper', ['--detect']).stdout, 'legacy\n');
  });

  test('iptables-legacy-save is never asked for a table (that would create it in the kernel)', () => {
    const tree = fakeTree({ 'iptables-legacy': rulesText(1) });
    runIn(tree, 'iptables-wrapper', ['--detect']);
    const legacyCalls = readFileSync(tree.callLog, 'utf8')
      .split('\n')
      .filter((l) => /^ip6?tables-legacy-save/.test(l));
    assert.ok(legacyCalls.length > 0);
    for (const call of legacyCalls) assert.doesNotMatch(call, /-t/, call);
  });

  test('a failing -save counts as no rules', () => {
    const tree = fakeTree({ 'iptables-legacy': rulesText(1) });
    writeExecutable(join(tree.root, 'usr/sbin/iptables-nft-save'), 'echo "-A BOGUS" ; echo "broken" >&2; exit 1\n');
    writeExecutable(join(tree.root, 'usr/sbin/ip6tables-nft-save'), 'exit 4\n');
    // The nft -save printed one rule line before failing: 1 vs 1 is a tie, so nft;
    // with two legacy rules legacy must win.
    assert.equal(runIn(tree, 'iptables-wrapper', ['--detect']).stdout, 'nft\n');
    writeFileSync(join(tree.root, 'rules/iptables-legacy'), rulesText(2));
    assert.equal(runIn(tree, 'iptables-wrapper', ['--detect']).stdout, 'legacy\n');
  });

  test('ip6tables-restore and iptables-restore map to the chosen back end with their arguments', () => {
    const tree = fakeTree({ 'iptables-legacy': rulesText(3) });
    runIn(tree, 'iptables-wrapper', ['--install']);
    assert.equal(runIn(tree, 'ip6tables-restore', ['--noflush', '-w', '5']).stdout, 'ran ip6tables-legacy-restore --noflush -w 5\n');
    assert.equal(runIn(tree, 'iptables-restore', ['-T', 'raw']).stdout, 'ran iptables-legacy-restore -T raw\n');
  });

  test('--detect changes nothing; --select repoints and prints the mode', () => {
    const tree = fakeTree({ 'iptables-nft': rulesText(3) });
    runIn(tree, 'iptables-wrapper', ['--install']);
    assert.equal(runIn(tree, 'iptables-wrapper', ['--detect']).stdout, 'nft\n');
    assert.equal(alternative(tree, 'iptables'), '/usr/sbin/iptables-wrapper');
    const r = runIn(tree, 'iptables-wrapper', ['--select']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'nft\n');
    assert.equal(alternative(tree, 'iptables'), '/usr/sbin/iptables-nft');
    assert.equal(alternative(tree, 'ip6tables'), '/usr/sbin/ip6tables-nft');
  });

  test('IPTABLES_WRAPPER_MODE overrides detection; an unknown value is ignored', () => {
    const tree = fakeTree({ 'iptables-nft': rulesText(9) });
    assert.equal(runIn(tree, 'iptables-wrapper', ['--detect'], { IPTABLES_WRAPPER_MODE: 'legacy' }).stdout, 'legacy\n');
    const bad = runIn(tree, 'iptables-wrapper', ['--detect'], { IPTABLES_WRAPPER_MODE: 'ebtables' });
    assert.equal(bad.stdout, 'nft\n');
    assert.match(bad.stderr, /ignoring IPTABLES_WRAPPER_MODE=ebtables/);
  });

  test('without iptables-nft: legacy', () => {
    const tree = fakeTree({}, { withoutNft: true });
    assert.equal(runIn(tree, 'iptables-wrapper', ['--detect']).stdout, 'legacy\n');
  });

  test('--install refuses iptables 1.8.0 to 1.8.3', () => {
    const tree = fakeTree({}, { version: 'v1.8.2' });
    const r = runIn(tree, 'iptables-wrapper', ['--install']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /1\.8\.0 to 1\.8\.3/);
    assert.equal(alternative(tree, 'iptables'), '/usr/sbin/iptables-nft', 'alternatives untouched');
  });

  test('unknown usage exits 2', () => {
    const tree = fakeTree({});
    assert.equal(runIn(tree, 'iptables-wrapper', ['--bogus']).status, 2);
  });

  test('the script passes shellcheck when shellcheck is installed', (t) => {
    const probe = spawnSync('shellcheck', ['--version']);
    if (probe.error !== undefined) {
      t.skip('shellcheck not installed');
      return;
    }
    const r = spawnSync('shellcheck', ['-s', 'sh', WRAPPER, ENTRYPOINT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});

describe('iptables-wrapper.sh with the real iptables binaries in network namespaces', () => {
  const namespaces: string[] = [];
  let usable = false;
  before(() => {
    const ip = spawnSync('ip', ['netns', 'list']);
    usable = process.getuid?.() === 0 && ip.status === 0 && existsSync('/usr/sbin/xtables-legacy-multi') && existsSync('/usr/sbin/xtables-nft-multi');
  });
  after(() => {
    for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns]);
  });

  function realTree(): FakeTree {
    const tree = fakeTree({});
    const sbin = join(tree.root, 'usr/sbin');
    for (const mode of ['legacy', 'nft'] as const) {
      for (const family of ['iptables', 'ip6tables'] as const) {
        for (const suffix of ['', '-save', '-restore']) {
          const path = join(sbin, `${family}-${mode}${suffix}`);
          rmSync(path);
          symlinkSync(`/usr/sbin/xtables-${mode}-multi`, path);
        }
      }
    }
    return tree;
  }

  function netns(tag: string): string {
    const name = `nld-ipt-${tag}-${process.pid}`;
    spawnSync('ip', ['netns', 'del', name]);
    execFileSync('ip', ['netns', 'add', name]);
    namespaces.push(name);
    return name;
  }

  function inNs(ns: string, tree: FakeTree, cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', ns, join(tree.bin, cmd), ...args], {
      env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin', IPTABLES_WRAPPER_ROOT: tree.root },
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  test('a namespace whose rules were added with iptables-legacy is driven with legacy', (t) => {
    if (!usable) {
      t.skip('needs root, ip netns and both iptables back ends');
      return;
    }
    const ns = netns('legacy');
    for (let i = 0; i < 3; i++) {
      execFileSync('ip', [
        'netns',
        'exec',
        ns,
        'iptables-legacy',
        '-t',
        'raw',
        '-A',
        'OUTPUT',
        '-p',
        'udp',
        '-d',
        `169.254.20.${10 + i}`,
        '--dport',
        '53',
        '-j',
        'NOTRACK',
      ]);
    }
    const tree = realTree();
    assert.equal(inNs(ns, tree, 'iptables-wrapper', ['--install']).status, 0);
    const r = inNs(ns, tree, 'iptables', ['-t', 'raw', '-S', 'OUTPUT']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /-A OUTPUT -d 169\.254\.20\.10\/32 -p udp -m udp --dport 53 -j NOTRACK/);
    assert.equal(alternative(tree, 'iptables'), '/usr/sbin/iptables-legacy');
  });

  test("a namespace with kubelet's hint chain in nf_tables is driven with nft", (t) => {
    if (!usable) {
      t.skip('needs root, ip netns and both iptables back ends');
      return;
    }
    const ns = netns('nft');
    execFileSync('ip', ['netns', 'exec', ns, 'iptables-nft', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
    execFileSync('ip', ['netns', 'exec', ns, 'iptables-legacy', '-A', 'INPUT', '-s', '198.18.0.1', '-j', 'ACCEPT']);
    execFileSync('ip', ['netns', 'exec', ns, 'iptables-legacy', '-A', 'INPUT', '-s', '198.18.0.2', '-j', 'ACCEPT']);
    const tree = realTree();
    assert.equal(inNs(ns, tree, 'iptables-wrapper', ['--install']).status, 0);
    const add = inNs(ns, tree, 'iptables', ['-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '-d', '169.254.20.10', '--dport', '53', '-j', 'NOTRACK']);
    assert.equal(add.status, 0, add.stderr);
    const nftRules = execFileSync('ip', ['netns', 'exec', ns, 'iptables-nft-save', '-t', 'raw'], { encoding: 'utf8' });
    assert.match(nftRules, /-A PREROUTING -d 169\.254\.20\.10\/32 -p tcp -m tcp --dport 53 -j NOTRACK/);
    const legacyRaw = spawnSync('ip', ['netns', 'exec', ns, 'iptables-legacy-save'], { encoding: 'utf8' }).stdout;
    assert.doesNotMatch(legacyRaw, /169\.254\.20\.10/);
  });
});

describe('entrypoint.sh', () => {
  function fakes(): { dir: string; node: string; wrapper: string; wrapperLog: string } {
    const dir = tempDir('nld-entry-');
    const wrapperLog = join(dir, 'wrapper.log');
    const node = join(dir, 'node');
    writeExecutable(node, 'echo "pid=$$ argv=$*"\n');
    const wrapper = join(dir, 'iptables-wrapper');
    writeExecutable(wrapper, `echo "$*" >> '${wrapperLog}'\necho nft\n`);
    return { dir, node, wrapper, wrapperLog };
  }

  test('selects the iptables back end, then execs node with the agent and its flags (same PID)', async () => {
    const f = fakes();
    const child = spawn(ENTRYPOINT, ['-localip', '169.254.20.10,10.96.0.10', '-conf', '/etc/Corefile'], {
      env: { PATH: '/usr/bin:/bin', NODE_LOCAL_DNS_NODE: f.node, NODE_LOCAL_DNS_IPTABLES_WRAPPER: f.wrapper },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, err);
    assert.equal(out, `pid=${child.pid} argv=/app/bin/node-local-dns.js -localip 169.254.20.10,10.96.0.10 -conf /etc/Corefile\n`);
    assert.equal(readFileSync(f.wrapperLog, 'utf8'), '--select\n');
    assert.match(err, /iptables back end: nft/);
  });

  test('SIGTERM sent to the container process reaches the agent', async () => {
    const f = fakes();
    writeExecutable(f.node, "trap 'echo got-TERM; exit 0' TERM\necho ready\nwhile :; do sleep 0.05; done\n");
    const child = spawn(ENTRYPOINT, ['-localip', '169.254.20.10'], {
      env: { PATH: '/usr/bin:/bin', NODE_LOCAL_DNS_NODE: f.node, NODE_LOCAL_DNS_IPTABLES_WRAPPER: f.wrapper },
    });
    let out = '';
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`agent never started: ${out}`)), 10_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) {
          clearTimeout(deadline);
          resolve();
        }
      });
    });
    child.kill('SIGTERM');
    const code = await closed;
    assert.equal(code, 0);
    assert.match(out, /got-TERM/);
  });

  test('a first argument that is not a flag runs that command instead, without touching iptables', () => {
    const f = fakes();
    const r = spawnSync(ENTRYPOINT, ['echo', 'hello', 'world'], {
      env: { PATH: '/usr/bin:/bin', NODE_LOCAL_DNS_NODE: f.node, NODE_LOCAL_DNS_IPTABLES_WRAPPER: f.wrapper },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0);
    assert.equal(r.stdout, 'hello world\n');
    assert.equal(existsSync(f.wrapperLog), false);
  });

  test('a failing back-end selection is reported and the agent still starts', () => {
    const f = fakes();
    writeExecutable(f.wrapper, 'exit 1\n');
    const r = spawnSync(ENTRYPOINT, ['-localip', '169.254.20.10'], {
      env: { PATH: '/usr/bin:/bin', NODE_LOCAL_DNS_NODE: f.node, NODE_LOCAL_DNS_IPTABLES_WRAPPER: f.wrapper },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /argv=\/app\/bin\/node-local-dns\.js -localip 169\.254\.20\.10/);
    assert.match(r.stderr, /selection failed/);
  });

  test('an empty NODE_LOCAL_DNS_IPTABLES_WRAPPER skips the selection', () => {
    const f = fakes();
    const r = spawnSync(ENTRYPOINT, [], {
      env: { PATH: `${f.dir}:/usr/bin:/bin`, NODE_LOCAL_DNS_NODE: f.node, NODE_LOCAL_DNS_IPTABLES_WRAPPER: '' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /argv=\/app\/bin\/node-local-dns\.js\n/);
    assert.equal(existsSync(f.wrapperLog), false);
  });

  test('runs the real agent entry file with Node 24', () => {
    const r = spawnSync(ENTRYPOINT, ['-version'], {
      env: { PATH: '/usr/bin:/bin', NODE_LOCAL_DNS_NODE: NODE, NODE_LOCAL_DNS_MAIN: join(ROOT, 'src/main.ts'), NODE_LOCAL_DNS_IPTABLES_WRAPPER: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`node-local-dns-${pkg.version.replaceAll('.', '\\.')}`));
    assert.match(r.stdout, /node24\./);
  });
});

/** Dockerfile instructions (continuation lines joined, comments dropped). */
function dockerInstructions(text: string): Array<{ op: string; args: string }> {
  const out: Array<{ op: string; args: string }> = [];
  let buf = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (buf === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    if (line.trimStart().startsWith('#')) continue;
    if (line.endsWith('\\')) {
      buf += `${line.slice(0, -1)} `;
      continue;
    }
    buf += line;
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(buf);
    if (m !== null) out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim() });
    buf = '';
  }
  return out;
}

/** A .dockerignore pattern as a regular expression (Docker's forms: *, ?, **, trailing /). */
function dockerPattern(pattern: string): RegExp {
  const segs = pattern.replace(/\/$/, '').split('/');
  let re = '';
  segs.forEach((seg, i) => {
    if (seg === '**') {
      re += '(?:[^/]+/)*';
      return;
    }
    re += seg
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replaceAll('*', '[^/]*')
      .replaceAll('?', '[^/]');
    if (i < segs.length - 1) re += '/';
  });
  // A match on a directory covers everything below it.
  return new RegExp(`^${re}(?:/.*)?$`);
}

/** Whether the build context leaves `path` out: the last matching pattern decides. */
function dockerIgnored(patterns: string[], path: string): boolean {
  let ignored = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    if (dockerPattern(negate ? p.slice(1) : p).test(path)) ignored = !negate;
  }
  return ignored;
}

function srcFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...srcFiles(p));
    else out.push(p);
  }
  return out;
}

describe('Dockerfile and .dockerignore', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const ins = dockerInstructions(dockerfile);
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  test('every stage builds on the official Node.js 24 slim image', () => {
    const arg = ins.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    assert.ok(arg, 'ARG NODE_IMAGE');
    assert.match(arg.args, /^NODE_IMAGE=node:24(\.\d+)*-(\w+-)?slim$/);
    const froms = ins.filter((i) => i.op === 'FROM');
    assert.ok(froms.length >= 2, 'multi-stage');
    for (const f of froms) assert.match(f.args, /^\$\{NODE_IMAGE\} AS \w+$/);
  });

  test('production dependencies only, from the lockfile', () => {
    const runs = ins.filter((i) => i.op === 'RUN').map((i) => i.args);
    assert.ok(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r)));
    // The two `npm install`s are build tools at the lockfile's versions: node-gyp in the addon
    // stage (nothing of it but the .node file reaches the runtime stage) and esbuild in the
    // bundle stage (nothing of it but bin/ and dist/ does).
    const installs = runs.filter((r) => /\bnpm (install|i)\b/.test(r));
    assert.deepEqual(
      installs.map(
        (r) =>
          /npm install (?:--\S+ )*"node-gyp@\$\(node -p "require\('\.\/package-lock\.json'\)\.packages\['node_modules\/node-gyp'\]\.version"\)"$/.test(r) ||
          /npm install (?:--\S+ )*"esbuild@\$\(node -p "require\('\/tmp\/package-lock\.json'\)\.packages\['node_modules\/esbuild'\]\.version"\)"$/.test(r),
      ),
      [true, true],
      installs.join('\n'),
    );
    const copies = ins.filter((i) => i.op === 'COPY').map((i) => i.args);
    assert.ok(copies.includes('--from=deps /app/node_modules ./node_modules'));
    assert.deepEqual(
      copies.filter((c) => c.startsWith('--from=addon')),
      ['--from=addon /build/build/Release/udp.node ./build/Release/udp.node'],
    );
    assert.deepEqual(
      copies.filter((c) => c.startsWith('--from=bundle')),
      ['--from=bundle /build/out/bin ./bin', '--from=bundle /build/out/dist ./dist'],
    );
  });

  test('the code the image runs imports only packages listed in dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const deps = new Set(Object.keys(pkg.dependencies ?? {}));
    const seen = new Set<string>();
    const missing: string[] = [];
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2]!;
        if (/^import\s+type\b/.test(m[0].trim())) continue;
        if (spec.startsWith('.')) {
          visit(join(dirname(file), spec));
        } else if (!spec.startsWith('node:')) {
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
          if (!deps.has(name)) missing.push(`${relative(ROOT, file)}: ${spec}`);
        }
      }
    };
    visit(join(ROOT, 'src/main.ts'));
    assert.ok(seen.size > 1, 'followed the imports of src/main.ts');
    assert.deepEqual(missing, []);
  });

  test('iptables (both back ends) and iproute2 installed, wrapper installed over iptables', () => {
    const run = ins.filter((i) => i.op === 'RUN').map((i) => i.args);
    assert.ok(run.some((r) => /apt-get install[^&]*\biptables\b/.test(r) && /apt-get install[^&]*\biproute2\b/.test(r)));
    const copyWrapper = ins.findIndex((i) => i.op === 'COPY' && /docker\/iptables-wrapper\.sh \/usr\/sbin\/iptables-wrapper$/.test(i.args));
    const install = ins.findIndex((i) => i.op === 'RUN' && /iptables-wrapper --install/.test(i.args));
    assert.ok(copyWrapper >= 0 && install > copyWrapper);
  });

  test('exec-form ENTRYPOINT running docker/entrypoint.sh, which starts /app/bin/node-local-dns.js; no HEALTHCHECK', () => {
    assert.equal(ins.filter((i) => i.op === 'HEALTHCHECK').length, 0);
    const entry = ins.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    assert.ok(entry);
    const argv = JSON.parse(entry.args) as string[];
    assert.ok(Array.isArray(argv) && argv.length === 1);
    const copy = ins.find((i) => i.op === 'COPY' && i.args.endsWith(` ${argv[0]}`));
    assert.ok(copy, `${argv[0]} is copied into the image`);
    assert.match(copy.args, /docker\/entrypoint\.sh /);
    assert.ok(ins.some((i) => i.op === 'WORKDIR' && i.args === '/app'));
    // The bundle stage builds bin/ and src/ (docker/bundle.mjs); the runtime stage takes its
    // bin/node-local-dns.js and dist/ (test/footprint/bundle.test.ts runs that layout).
    const stages: string[] = [];
    for (const i of ins) stages.push(i.op === 'FROM' ? (/ AS (\w+)$/.exec(i.args)?.[1] ?? '') : (stages.at(-1) ?? ''));
    const inStage = (stage: string, op: string, args: string): boolean => ins.some((i, k) => stages[k] === stage && i.op === op && i.args === args);
    assert.ok(inStage('bundle', 'COPY', 'src ./src'));
    assert.ok(inStage('bundle', 'COPY', 'bin ./bin'));
    assert.ok(inStage('bundle', 'COPY', 'docker/bundle.mjs ./docker/'));
    assert.ok(inStage('bundle', 'RUN', 'node docker/bundle.mjs /build/out'));
    assert.ok(inStage('runtime', 'COPY', '--from=bundle /build/out/bin ./bin'));
    assert.ok(inStage('runtime', 'COPY', '--from=bundle /build/out/dist ./dist'));
    assert.ok(inStage('runtime', 'COPY', 'package.json ./'), 'package.json ("type": "module") next to bin/ and dist/');
    assert.match(readFileSync(ENTRYPOINT, 'utf8'), /exec "\$\{NODE_LOCAL_DNS_NODE:-node\}" "\$\{NODE_LOCAL_DNS_MAIN:-\/app\/bin\/node-local-dns\.js\}" "\$@"/);
    const cmd = ins.filter((i) => i.op === 'CMD').at(-1);
    assert.ok(cmd && Array.isArray(JSON.parse(cmd.args)), 'CMD in exec form');
  });

  test('the image, `npm start` and the bin shebang start Node.js with the same flags (the young-generation cap)', () => {
    const flags = shippedNodeFlags(ROOT);
    assert.ok(
      flags.some((f) => /^--max-semi-space-size=\d+$/.test(f)),
      `npm start flags: ${flags.join(' ')}`,
    );
    assert.ok(
      flags.some((f) => /^--max-old-space-size=\d+$/.test(f)),
      `npm start flags: ${flags.join(' ')}`,
    );
    const env = ins.filter((i) => i.op === 'ENV' && i.args.startsWith('NODE_OPTIONS=')).at(-1);
    assert.ok(env, 'ENV NODE_OPTIONS in the Dockerfile');
    assert.equal(env.args, flags.length === 1 ? `NODE_OPTIONS=${flags[0]}` : `NODE_OPTIONS="${flags.join(' ')}"`);
    const shebang = readFileSync(join(ROOT, 'bin/node-local-dns.js'), 'utf8').split('\n')[0];
    assert.equal(shebang, `#!/usr/bin/env -S node ${flags.join(' ')}`);
  });

  test('the addon stage copies every source binding.gyp compiles, and the build script', () => {
    // binding.gyp is JSON with `#` comment lines.
    const gyp = JSON.parse(
      readFileSync(join(ROOT, 'binding.gyp'), 'utf8')
        .split('\n')
        .filter((l) => !l.trimStart().startsWith('#'))
        .join('\n'),
    ) as { targets: { sources: string[] }[] };
    const copied = ins
      .filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))
      .flatMap((x) =>
        x.args
          .split(/\s+/)
          .filter((w) => !w.startsWith('--'))
          .slice(0, -1),
      );
    for (const src of [...gyp.targets.flatMap((t) => t.sources), 'binding.gyp', 'native/build.mjs']) assert.ok(copied.includes(src), `${src} is copied`);
  });

  test('the build context holds what COPY needs and no tests', () => {
    for (const i of ins.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
      const words = i.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      for (const src of words.slice(0, -1)) {
        assert.ok(existsSync(join(ROOT, src)), `${src} exists`);
        assert.equal(dockerIgnored(ignore, src), false, `${src} is in the build context`);
      }
    }
    for (const f of srcFiles(join(ROOT, 'src'))) {
      const rel = relative(ROOT, f);
      // Tests, their data, type declarations and READMEs: nothing the agent runs.
      const expectIgnored = /\.test\.ts$/.test(rel) || /(^|\/)testdata\//.test(rel) || /\.d\.ts$/.test(rel) || /\.md$/.test(rel);
      assert.equal(dockerIgnored(ignore, rel), expectIgnored, rel);
    }
    for (const p of ['test/deploy/docker.test.ts', 'test/lib/cache-testing.ts', 'node_modules/yaml/package.json', 'deploy/render.ts', '.git/HEAD']) {
      assert.equal(dockerIgnored(ignore, p), true, p);
    }
  });

  test('the image ships only code the agent runs: every file of src/ in the build context is imported from the entry point', () => {
    // Static imports (type-only ones too: their files are part of the source), side-effect
    // imports, dynamic import() and worker scripts (new URL('./x.ts', import.meta.url)).
    const reached = new Set<string>();
    const visit = (file: string): void => {
      if (reached.has(file)) return;
      reached.add(file);
      const text = readFileSync(file, 'utf8');
      const specs = [
        ...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/g),
        ...text.matchAll(/(?:^|\n)\s*import\s+['"](\.[^'"]+)['"]/g),
        ...text.matchAll(/\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g),
        ...text.matchAll(/\bnew URL\(\s*['"](\.[^'"]+\.ts)['"]\s*,\s*import\.meta\.url\s*\)/g),
      ];
      for (const m of specs) visit(join(dirname(file), m[1]!));
    };
    visit(join(ROOT, 'bin/node-local-dns.js'));
    assert.ok(reached.has(join(ROOT, 'src/workers/worker.ts')), 'followed the worker script');
    const shipped = srcFiles(join(ROOT, 'src')).filter((f) => !dockerIgnored(ignore, relative(ROOT, f)));
    assert.deepEqual(
      shipped.filter((f) => !reached.has(f)).map((f) => relative(ROOT, f)),
      [],
      'shipped but never imported (test helpers belong under test/)',
    );
  });
});
