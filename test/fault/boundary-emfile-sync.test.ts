/**
 * `ulimit -n` exhausted on the agent side: the real agent (src/main.ts in agent mode, managing
 * a bridge interface and its iptables rules inside a network namespace of its own) has its
 * descriptor limit lowered to what it holds (`prlimit --pid`), so every `iptables`/`ip` the
 * periodic sync starts fails with EMFILE. Each failure must be logged and counted in
 * coredns_nodecache_setup_errors_total, the timer must keep ticking, the process must keep
 * answering DNS, and once descriptors are available again the next tick repairs a rule that
 * was deleted meanwhile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, dig, netnsSkipReason, savedRules, waitFor } from '../netns/harness.ts';
import { ROOT } from './lib/agent.ts';

const LOCAL_IP = '169.254.20.10';

function skipReason(): string | undefined {
  const r = netnsSkipReason();
  if (r !== undefined) return r;
  try {
    execFileSync('sh', ['-c', 'command -v prlimit'], { stdio: 'ignore' });
  } catch {
    return 'prlimit is not installed';
  }
  return undefined;
}

/** The limits of a running process as `soft:hard`. */
function nofile(pid: number): { soft: number; hard: number } {
  const line = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--raw', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim();
  const [soft, hard] = line.split(/\s+/).map(Number);
  return { soft: soft!, hard: hard! };
}

const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

test('EMFILE in the periodic iptables/interface sync: logged, counted, retried next tick, never fatal', { skip: skipReason(), timeout: 120_000 }, async (t) => {
  const ns = await Netns.create(`nlF-${process.pid}-emfile`);
  const dir = await mkdtemp(join(tmpdir(), 'nlF-emfile-'));
  t.after(async () => {
    await ns.delete();
    await rm(dir, { recursive: true, force: true });
  });
  await mkdir(join(dir, 'peers'));
  await writeFile(join(dir, 'Corefile'), `.:53 {\n    errors\n}\n`);
  const child = ns.spawn(
    process.execPath,
    [
      join(ROOT, 'src/main.ts'),
      '-localip',
      LOCAL_IP,
      '-interfacetype',
      'bridge',
      '-conf',
      join(dir, 'Corefile'),
      '-basecorefile',
      join(dir, 'none'),
      '-syncinterval',
      '1s',
      '-metrics-listen-address',
      '127.0.0.1:9353',
      '-health-port',
      '8080',
      '-peerdir',
      join(dir, 'peers'),
    ],
    { cwd: ROOT },
  );
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b));
  child.stderr!.on('data', (b: Buffer) => (out += b));
  const exited = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  t.after(async () => {
    if (alive()) {
      child.kill('SIGTERM');
      const k = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(k);
    }
  });
  await waitFor(
    'start-up',
    async () => {
      if (!alive()) throw new Error(out);
      return out.includes('[INFO] Start-up complete: serving');
    },
    30_000,
    100,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${out}`);
  });
  const rules = async () => {
    const save = await ns.iptablesSave();
    return [...savedRules(save, 'raw'), ...savedRules(save, 'filter')].filter((l) => l.includes('NodeLocal DNS Cache'));
  };
  assert.equal((await rules()).length, 12);
  const metric = async (type: string): Promise<number> => {
    const text = await ns.exec('curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:9353/metrics']);
    const m = new RegExp(`^coredns_nodecache_setup_errors_total\\{errortype="${type}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  };
  assert.equal(await metric('iptables'), 0);
  assert.equal(await metric('interface_check'), 0);

  // The limit becomes the lowest free descriptor number of the agent at rest (the kernel hands
  // out the lowest free number and refuses one at or above the limit): the next spawn's pipes
  // get EMFILE. Sampled a few times, as a sync tick's pipes may be open at one reading.
  const pid = child.pid!;
  const limits = nofile(pid);
  let lowestFree = Infinity;
  for (let i = 0; i < 10; i++) {
    const used = new Set((await readdir(`/proc/${pid}/fd`)).map(Number));
    let n = 0;
    while (used.has(n)) n++;
    lowestFree = Math.min(lowestFree, n);
    await new Promise((r) => setTimeout(r, 30));
  }
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${lowestFree}:${limits.hard}`]);
  const before = out.length;
  await ns.exec('iptables', [
    '-w',
    '5',
    '-t',
    'raw',
    '-D',
    'PREROUTING',
    '-p',
    'udp',
    '-d',
    LOCAL_IP,
    '--dport',
    '53',
    '-j',
    'NOTRACK',
    '-m',
    'comment',
    '--comment',
    'NodeLocal DNS Cache: skip conntrack',
  ]);
  // Two full ticks that fail: every rule check and the interface check.
  await waitFor('two failing sync ticks', async () => count(out.slice(before), /Error checking interface nodelocaldns - .*EMFILE/g) >= 2, 20_000, 100).catch(
    (e: Error) => {
      throw new Error(`${e.message}\n${out.slice(before)}`);
    },
  );
  assert.ok(alive(), out);
  assert.ok(
    count(out.slice(before), /\[ERROR\] Error checking\/adding iptables rule \{.*\}, error - cannot run iptables: spawn iptables EMFILE/g) >= 12,
    out.slice(before),
  );
  const answered = await dig(ns, LOCAL_IP, 'example.org', 'A', { timeoutSec: 2 });
  assert.notEqual(answered.status, 'TIMEOUT', 'DNS answered while descriptors are exhausted');

  // Descriptors back: the next tick puts the deleted rule back, and the failures were counted.
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limits.soft}:${limits.hard}`]);
  await waitFor('the rule to be added back', async () => (await rules()).length === 12, 20_000, 100);
  await waitFor(
    'the log line',
    async () => out.includes('Added back nodelocaldns rule - {raw PREROUTING [-p udp -d 169.254.20.10 --dport 53 -j NOTRACK'),
    5_000,
  );
  assert.ok((await metric('iptables')) >= 24, 'every failed rule check counted');
  assert.ok((await metric('interface_check')) >= 2);
  assert.ok(alive());
  child.kill('SIGTERM');
  assert.equal(await exited, 0, out);
  assert.deepEqual(await rules(), [], 'torn down on SIGTERM');
});
