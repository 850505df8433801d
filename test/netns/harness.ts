/**
 * A simulated Kubernetes node built from network namespaces, for tests that need real
 * interfaces, iptables and DNS traffic without touching the host's network.
 *
 *   pod  (169.254.1.2/24, default via .1)
 *     │ veth
 *   node (169.254.1.1/24 towards pod, 198.18.1.1/24 towards kubedns, forwarding on,
 *     │   kube-proxy style DNAT: 198.18.0.10 and 198.18.0.11 :53 udp/tcp → 198.18.1.2:53)
 *     │ veth
 *   kubedns (198.18.1.2/24, default via .1; NSD serving cluster.local, in-addr.arpa,
 *            example.org and stub.test)
 *
 * Addresses come only from 169.254.0.0/16 and 198.18.0.0/15. Namespace names carry the test
 * process id (`nld-<pid>-<n>-node`) so parallel runs never collide, and namespaces left by a
 * crashed run (its pid gone) are removed by the next harness use. Everything created is removed
 * by `teardown()`, and as a last resort when the process exits.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execRunner, type CommandRunner } from '../../src/agent/exec.ts';

/** A runner whose commands run inside network namespace `ns` (`ip netns exec ns file args...`). */
function netnsRunner(ns: string, base: CommandRunner = execRunner): CommandRunner {
  return (file, args, opts) => base('ip', ['netns', 'exec', ns, file, ...args], opts);
}

export const SIM = {
  podIp: '169.254.1.2',
  nodePodSideIp: '169.254.1.1',
  nodeKubeDnsSideIp: '198.18.1.1',
  kubeDnsPodIp: '198.18.1.2',
  /** kube-dns service cluster IP (pods' nameserver before node-local-dns). */
  kubeDnsServiceIp: '198.18.0.10',
  /** kube-dns-upstream service cluster IP (node-local-dns's upstream for cluster.local). */
  kubeDnsUpstreamServiceIp: '198.18.0.11',
  /** The link-local address node-local-dns listens on. */
  localDnsIp: '169.254.20.10',
  serviceCidr: '198.18.0.0/24',
} as const;

/** Names and addresses the kubedns namespace's NSD answers for. */
export const SIM_RECORDS = {
  'kube-dns.kube-system.svc.cluster.local.': '198.18.0.10',
  'kube-dns-upstream.kube-system.svc.cluster.local.': '198.18.0.11',
  'kubernetes.default.svc.cluster.local.': '198.18.0.1',
  'web.default.svc.cluster.local.': '198.18.2.20',
  'www.example.org.': '198.18.5.5',
  'www.stub.test.': '198.18.6.6',
} as const;

const PREFIX = 'nld-';
let counter = 0;
const liveNamespaces = new Set<string>();
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveChildren) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const ns of liveNamespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  });
}

/** Why netns tests cannot run here, or undefined when they can. */
export function netnsSkipReason(needs: { nsd?: boolean } = {}): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespace tests need root (run as uid 0)';
  const tools = ['ip', 'iptables', 'iptables-save', 'ip6tables', 'dig', ...(needs.nsd ? ['nsd'] : [])];
  for (const t of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    } catch {
      return `${t} is not installed`;
    }
  }
  return undefined;
}

/** Runs a command and throws with its stderr when it fails. */
export async function must(runner: CommandRunner, file: string, args: readonly string[]): Promise<string> {
  const r = await runner(file, args);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Removes namespaces of earlier test runs whose process is gone. */
export async function sweepStaleNamespaces(): Promise<void> {
  const r = await execRunner('ip', ['netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^nld-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) await execRunner('ip', ['netns', 'del', name]);
  }
}

export class Netns {
  readonly name: string;
  /** Runs commands inside this namespace. */
  readonly run: CommandRunner;

  constructor(name: string) {
    this.name = name;
    this.run = netnsRunner(name);
  }

  static async create(name: string): Promise<Netns> {
    installExitHook();
    await must(execRunner, 'ip', ['netns', 'add', name]);
    liveNamespaces.add(name);
    const ns = new Netns(name);
    await must(ns.run, 'ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Runs and throws on failure; returns stdout. */
  exec(file: string, args: readonly string[]): Promise<string> {
    return must(this.run, file, args);
  }

  /** Starts a long-running process inside the namespace; it is killed at teardown/exit. */
  spawn(file: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, file, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
    return child;
  }

  async iptablesSave(ipv6 = false): Promise<string> {
    return this.exec(ipv6 ? 'ip6tables-save' : 'iptables-save', []);
  }

  async delete(): Promise<void> {
    await execRunner('ip', ['netns', 'del', this.name]);
    liveNamespaces.delete(this.name);
  }
}

/** A fresh unique namespace name with the given role suffix. */
export function uniqueNsName(role: string): string {
  counter++;
  return `${PREFIX}${process.pid}-${counter}-${role}`;
}

/** One empty namespace (loopback up), e.g. for iptables and interface tests. */
export async function createScratchNetns(role = 'scratch'): Promise<Netns> {
  await sweepStaleNamespaces();
  return Netns.create(uniqueNsName(role));
}

/** Lines of `iptables-save` that are rules (`-A ...`) of the given table, in order. */
export function savedRules(save: string, table: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) cur = line.slice(1);
    else if (cur === table && line.startsWith('-A ')) out.push(line);
  }
  return out;
}

export interface DigResult {
  status: string;
  /** Answer section lines as `name ttl class type data`, whitespace-normalised. */
  answers: string[];
  raw: string;
}

/** Runs dig inside `ns` and parses status and answers; status is 'TIMEOUT' when nothing came back. */
export async function dig(
  ns: Netns,
  server: string,
  name: string,
  type = 'A',
  opts: { tcp?: boolean; timeoutSec?: number; port?: number } = {},
): Promise<DigResult> {
  const args = [
    `@${server}`,
    '-p',
    String(opts.port ?? 53),
    name,
    type,
    `+time=${opts.timeoutSec ?? 2}`,
    '+tries=1',
    '+nocookie',
    ...(opts.tcp ? ['+tcp'] : []),
  ];
  const r = await ns.run('dig', args);
  const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? 'TIMEOUT';
  const answers: string[] = [];
  const sec = r.stdout.split(';; ANSWER SECTION:\n')[1];
  if (sec) {
    for (const line of sec.split('\n')) {
      if (line.trim() === '') break;
      answers.push(line.trim().split(/\s+/).join(' '));
    }
  }
  return { status, answers, raw: r.stdout + r.stderr };
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000, stepMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

function zoneFiles(): Record<string, string> {
  const soa = (origin: string): string =>
    `$TTL 30\n$ORIGIN ${origin}\n@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30\n@ IN NS ns.dns.cluster.local.\n`;
  return {
    'cluster.local':
      soa('cluster.local.') +
      'ns.dns IN A 198.18.1.2\n' +
      'kube-dns.kube-system.svc IN A 198.18.0.10\n' +
      'kube-dns-upstream.kube-system.svc IN A 198.18.0.11\n' +
      'kubernetes.default.svc IN A 198.18.0.1\n' +
      'web.default.svc IN A 198.18.2.20\n',
    'in-addr.arpa':
      soa('in-addr.arpa.') +
      '10.0.18.198 IN PTR kube-dns.kube-system.svc.cluster.local.\n' +
      '11.0.18.198 IN PTR kube-dns-upstream.kube-system.svc.cluster.local.\n' +
      '1.0.18.198 IN PTR kubernetes.default.svc.cluster.local.\n' +
      '20.2.18.198 IN PTR web.default.svc.cluster.local.\n',
    'example.org': soa('example.org.') + 'www IN A 198.18.5.5\n',
    'stub.test': soa('stub.test.') + 'www IN A 198.18.6.6\n',
  };
}

export interface SimNode {
  pod: Netns;
  node: Netns;
  kubedns: Netns;
  /** Temp dir of this node (NSD config; tests may put their files here too). */
  dir: string;
  /** The NSD process in `kubedns`, when started. */
  dnsServer: ChildProcess | undefined;
  teardown(): Promise<void>;
}

/**
 * Tears a simulated node down: stops its DNS server (SIGTERM, SIGKILL after 3 s), kills anything
 * a test left running inside each namespace, deletes the namespaces (newest first) and `dir`.
 */
export async function tearDownSimulation(created: Netns[], dir: string, dnsServer: ChildProcess | undefined): Promise<void> {
  if (dnsServer && dnsServer.exitCode === null && dnsServer.signalCode === null) {
    const exited = new Promise((r) => dnsServer.once('exit', r));
    dnsServer.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000).unref())]);
    dnsServer.kill('SIGKILL');
  }
  for (const ns of created.reverse()) {
    const pids = await execRunner('ip', ['netns', 'pids', ns.name]);
    for (const p of pids.stdout
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((x) => x > 0)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await ns.delete();
  }
  await rm(dir, { recursive: true, force: true });
}

/** An agent process started in a namespace: its output so far and its exit. */
export interface NetnsAgent {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Collects `child`'s stdout and stderr and its exit. */
export function watchAgent(child: ChildProcess): NetnsAgent {
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, out: () => out, exited };
}

/** Sends `signal` (unless the agent already exited) and waits up to 20 s for the exit. */
export async function stopAgent(agent: NetnsAgent, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (agent.child.exitCode !== null || agent.child.signalCode !== null) return agent.exited;
  agent.child.kill(signal);
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`agent did not exit within 20 s of ${signal}\n${agent.out()}`)), 20_000).unref(),
  );
  return Promise.race([agent.exited, timeout]);
}

/**
 * Waits (waitFor) until `check` holds, failing at once if the agent exits first; either failure
 * carries the agent's output.
 */
export async function waitAgentReady(agent: NetnsAgent, what: string, check: () => Promise<boolean>, timeoutMs = 30_000, stepMs = 200): Promise<void> {
  const ready = waitFor(what, check, timeoutMs, stepMs);
  const died = agent.exited.then(({ code, signal }) => {
    throw new Error(`node-local-dns exited early (code ${code}, signal ${signal})`);
  });
  await Promise.race([ready, died]).catch((err: Error) => {
    throw new Error(`${err.message}\nagent output:\n${agent.out()}`);
  });
  died.catch(() => undefined);
}

/**
 * kube-proxy's iptables mode for DNS services in `node`: the KUBE-SERVICES nat chain, jumped to
 * from PREROUTING and OUTPUT, with one DNAT rule per service and protocol (port 53, kube-proxy's
 * comment) to `endpoint`. `bin` picks the family: iptables or ip6tables.
 */
export async function installKubeProxyDns(
  node: Netns,
  bin: 'iptables' | 'ip6tables',
  services: readonly (readonly [svc: string, dst: string])[],
  endpoint: string,
): Promise<void> {
  await node.exec(bin, ['-w', '5', '-t', 'nat', '-N', 'KUBE-SERVICES']);
  for (const chain of ['PREROUTING', 'OUTPUT']) {
    await node.exec(bin, ['-w', '5', '-t', 'nat', '-A', chain, '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']);
  }
  for (const [svc, dst] of services) {
    for (const proto of ['udp', 'tcp']) {
      const comment = `${svc}:dns${proto === 'tcp' ? '-tcp' : ''} cluster IP`;
      await node.exec(bin, [
        '-w',
        '5',
        '-t',
        'nat',
        '-A',
        'KUBE-SERVICES',
        '-d',
        dst,
        '-p',
        proto,
        '-m',
        proto,
        '--dport',
        '53',
        '-m',
        'comment',
        '--comment',
        comment,
        '-j',
        'DNAT',
        '--to-destination',
        endpoint,
      ]);
    }
  }
}

/** Builds pod/node/kubedns namespaces and (unless `dns: false`) starts NSD in kubedns. */
export async function createSimNode(opts: { dns?: boolean } = {}): Promise<SimNode> {
  await sweepStaleNamespaces();
  const n = ++counter;
  const base = `${PREFIX}${process.pid}-${n}`;
  const created: Netns[] = [];
  const dir = await mkdtemp(join(tmpdir(), `${base}-`));
  let dnsServer: ChildProcess | undefined;

  const teardown = (): Promise<void> => tearDownSimulation(created, dir, dnsServer);

  try {
    const pod = await Netns.create(`${base}-pod`);
    created.push(pod);
    const node = await Netns.create(`${base}-node`);
    created.push(node);
    const kubedns = await Netns.create(`${base}-kubedns`);
    created.push(kubedns);

    // Links: created inside `node`, peers moved straight into their namespace.
    await node.exec('ip', ['link', 'add', 'vpod', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name]);
    await node.exec('ip', ['link', 'add', 'vkdns', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', kubedns.name]);

    await pod.exec('ip', ['addr', 'add', `${SIM.podIp}/24`, 'dev', 'eth0']);
    await pod.exec('ip', ['link', 'set', 'eth0', 'up']);
    await pod.exec('ip', ['route', 'add', 'default', 'via', SIM.nodePodSideIp]);

    await kubedns.exec('ip', ['addr', 'add', `${SIM.kubeDnsPodIp}/24`, 'dev', 'eth0']);
    await kubedns.exec('ip', ['link', 'set', 'eth0', 'up']);
    await kubedns.exec('ip', ['route', 'add', 'default', 'via', SIM.nodeKubeDnsSideIp]);

    await node.exec('ip', ['addr', 'add', `${SIM.nodePodSideIp}/24`, 'dev', 'vpod']);
    await node.exec('ip', ['addr', 'add', `${SIM.nodeKubeDnsSideIp}/24`, 'dev', 'vkdns']);
    await node.exec('ip', ['link', 'set', 'vpod', 'up']);
    await node.exec('ip', ['link', 'set', 'vkdns', 'up']);
    // The service CIDR is routed towards the cluster (kube-proxy DNATs it before it leaves).
    await node.exec('ip', ['route', 'add', SIM.serviceCidr, 'via', SIM.kubeDnsPodIp]);
    await node.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);

    // kube-proxy (iptables mode) for the two DNS services.
    await installKubeProxyDns(
      node,
      'iptables',
      [
        ['kube-system/kube-dns', `${SIM.kubeDnsServiceIp}/32`],
        ['kube-system/kube-dns-upstream', `${SIM.kubeDnsUpstreamServiceIp}/32`],
      ],
      `${SIM.kubeDnsPodIp}:53`,
    );

    if (opts.dns ?? true) {
      const zones = zoneFiles();
      for (const [z, text] of Object.entries(zones)) await writeFile(join(dir, `${z}.zone`), text);
      const conf =
        'server:\n' +
        `  ip-address: ${SIM.kubeDnsPodIp}\n  port: 53\n  username: ""\n  chroot: ""\n` +
        `  zonesdir: "${dir}"\n  database: ""\n  pidfile: "${dir}/nsd.pid"\n  xfrdfile: "${dir}/xfrd.state"\n` +
        `  zonelistfile: "${dir}/zone.list"\n  xfrdir: "${dir}"\n  logfile: "${dir}/nsd.log"\n` +
        '  verbosity: 1\n  rrl-ratelimit: 0\n  server-count: 1\n  reuseport: no\n' +
        'remote-control:\n  control-enable: no\n' +
        Object.keys(zones)
          .map((z) => `zone:\n  name: ${z}\n  zonefile: ${z}.zone\n`)
          .join('');
      await writeFile(join(dir, 'nsd.conf'), conf);
      dnsServer = kubedns.spawn('nsd', ['-d', '-c', join(dir, 'nsd.conf')], { stdio: 'ignore' });
      await waitFor('NSD in the kubedns namespace', async () => {
        const r = await dig(kubedns, SIM.kubeDnsPodIp, 'kube-dns.kube-system.svc.cluster.local', 'A', { timeoutSec: 1 });
        return r.status === 'NOERROR' && r.answers.length === 1;
      });
    }
    return { pod, node, kubedns, dir, dnsServer, teardown };
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }
}
