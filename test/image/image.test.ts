/**
 * The container image, built from the real Dockerfile and run on a simulated node.
 *
 * Build: Debian's podman builds ./Dockerfile with `--isolation chroot` on the stand-in for
 * node:24-slim (base.ts: mmdebstrap minbase + Node 24 + npm/corepack, cached between runs),
 * passed as `--build-arg NODE_IMAGE=...`. No layer cache: every run builds the project's
 * stages from scratch.
 *
 * Run: the OCI runtime cannot start containers in this sandbox (crun's setrlimit is refused),
 * so the image runs the way a runtime would set it up, by hand: `podman create` + `podman mount`
 * give the container's writable root filesystem; the image's ENTRYPOINT and CMD (plus
 * `-interfacetype bridge`: this kernel has no dummy links) run under `chroot` in that root with
 * the image's Env and WorkingDir, as PID 1 of a new pid namespace (`unshare --pid --fork
 * --mount-proc`), inside the `node` namespace of test/netns/harness.ts (hostNetwork). What a pod
 * would have mounted is written into the container's root: the node-local-dns ConfigMap as
 * /etc/coredns/Corefile.base (the stock Corefile, IPVS-mode rendering: only 169.254.20.10, as
 * the CMD's -localip) and the node's /etc/resolv.conf (a fixture naming the test's NSD, never
 * the machine's). KUBE_DNS_UPSTREAM_SERVICE_HOST names the kube-dns-upstream service IP.
 *
 * Each of the two iptables back ends docker/iptables-wrapper.sh chooses between gets a node of
 * its own whose kube-proxy rules are in that back end (legacy: rules only, picked by rule count;
 * nft: rules plus kubelet's KUBE-IPTABLES-HINT chain). Checks: the entrypoint picks that back
 * end, the agent is PID 1 of its pid namespace, serves cluster.local (through kube-proxy's DNAT
 * to NSD) and other names (through resolv.conf) on 169.254.20.10 over UDP and TCP, has its 12
 * rules in that back end and none in the other, answers /health on :8080; SIGTERM sent to it
 * (as the runtime sends it) makes it remove rules and interface and exit 0.
 *
 * What ships: no tests or test data, exactly the lockfile's production packages, no npm, npx or
 * corepack, none of the machine's npm/apt/CA files added by the project's layers. The image size
 * (uncompressed, per layer, gzip-compressed) and the build time are printed as diagnostics.
 *
 * Skips only when not root or a tool is missing (Debian: podman mmdebstrap, plus the netns
 * tests' iproute2 iptables nftables nsd bind9-dnsutils curl).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIM, createSimNode, dig, netnsSkipReason, savedRules, waitFor, type SimNode } from '../netns/harness.ts';
import { standInBase } from './base.ts';
import { createMounted, gzippedSaveBytes, inspectImage, podman, run, sweepStale, type ImageConfig, type MountedContainer } from './podman.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const IMAGE_REPOSITORY = 'localhost/node-local-dns-test-image';
const RULES = 12;

type Backend = 'legacy' | 'nft';

function skipReason(): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'building and running the image needs root (run as uid 0)';
  const r = netnsSkipReason({ nsd: true });
  if (r !== undefined) return r;
  const tools: Array<[string, string]> = [
    ['podman', 'podman'],
    ['mmdebstrap', 'mmdebstrap'],
    ['npm', 'npm'],
    ['unshare', 'util-linux'],
    ['chroot', 'coreutils'],
    ['iptables-legacy', 'iptables'],
    ['iptables-nft', 'iptables'],
    ['nft', 'nftables'],
    ['curl', 'curl'],
  ];
  for (const [tool, pkg] of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (Debian: apt-get install ${pkg})`;
    }
  }
  return undefined;
}
const skip = skipReason();

const MiB = 1024 * 1024;
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

// ---------------------------------------------------------------- what ships

/** Files under `dir`, relative to it, sorted ('' when missing). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** Bytes of the regular files under `dir`. */
function bytesUnder(dir: string): number {
  return filesUnder(dir).reduce((sum, f) => sum + lstatSync(join(dir, f)).size, 0);
}

/** Package directories under a node_modules tree, as the lockfile names them ("node_modules/a/node_modules/@s/b"). */
function installedPackages(appDir: string): string[] {
  const out: string[] = [];
  const walk = (nm: string): void => {
    if (!existsSync(join(appDir, nm))) return;
    for (const e of readdirSync(join(appDir, nm), { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const names = e.name.startsWith('@') ? readdirSync(join(appDir, nm, e.name)).map((s) => `${e.name}/${s}`) : [e.name];
      for (const n of names) {
        out.push(`${nm}/${n}`);
        walk(`${nm}/${n}/node_modules`);
      }
    }
  };
  walk('node_modules');
  return out.sort();
}

// ---------------------------------------------------------------- the simulated node

/** Moves kube-proxy's rules (created by the harness with the machine's `iptables`) into `backend`. */
async function kubeProxyOn(sim: SimNode, backend: Backend): Promise<void> {
  const nat = await sim.node.exec('iptables-save', ['-t', 'nat']);
  await sim.node.exec('nft', ['flush', 'ruleset']);
  if ((await sim.node.exec('iptables-legacy-save', [])).includes('*nat')) {
    await sim.node.exec('iptables-legacy', ['-t', 'nat', '-F']);
    await sim.node.exec('iptables-legacy', ['-t', 'nat', '-X']);
  }
  const restored = await sim.node.run(`iptables-${backend}-restore`, [], { input: nat });
  assert.equal(restored.code, 0, restored.stderr);
  // kubelet (>= 1.17) marks the back end it uses; the legacy node is left to the rule count.
  if (backend === 'nft') await sim.node.exec('iptables-nft', ['-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
  assert.equal(savedRules(await sim.node.exec(`iptables-${backend}-save`, []), 'nat').filter((l) => l.includes('-j DNAT')).length, 4);
}

async function nodeLocalRules(sim: SimNode, backend: Backend): Promise<string[]> {
  const save = await sim.node.exec(`iptables-${backend}-save`, []);
  return [...savedRules(save, 'raw'), ...savedRules(save, 'filter')].filter((l) => l.includes('NodeLocal DNS Cache'));
}

async function linkExists(sim: SimNode, name: string): Promise<boolean> {
  return (await sim.node.run('ip', ['link', 'show', name])).code === 0;
}

/** The stock ConfigMap Corefile, rendered as the IPVS-mode sed step does (only 169.254.20.10). */
async function corefileBase(): Promise<string> {
  const raw = await readFile(join(ROOT, 'src/agent/testdata/nodelocaldns-configmap.Corefile'), 'utf8');
  return raw
    .replaceAll(' __PILLAR__DNS__SERVER__', '')
    .replaceAll('__PILLAR__LOCAL__DNS__', SIM.localDnsIp)
    .replaceAll('__PILLAR__DNS__DOMAIN__', 'cluster.local');
}

interface Pod {
  child: ChildProcess;
  argv: string[];
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** What the pod would have mounted, written into the container's root. */
async function podVolumes(container: MountedContainer): Promise<void> {
  await mkdir(join(container.root, 'etc/coredns'), { recursive: true });
  await writeFile(join(container.root, 'etc/coredns/Corefile.base'), await corefileBase());
  await writeFile(join(container.root, 'etc/resolv.conf'), `nameserver ${SIM.kubeDnsPodIp}\n`);
}

/** ENTRYPOINT + CMD of the image in its root, as PID 1 of a new pid namespace in the node's network namespace. */
function startPod(sim: SimNode, container: MountedContainer, cfg: ImageConfig): Pod {
  const argv = [...cfg.entrypoint, ...cfg.cmd, '-interfacetype', 'bridge'];
  const env: Record<string, string> = { KUBE_DNS_UPSTREAM_SERVICE_HOST: SIM.kubeDnsUpstreamServiceIp, HOSTNAME: container.name };
  for (const kv of cfg.env) {
    const i = kv.indexOf('=');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  // Through the harness (its children are killed when this process exits); --kill-child: the
  // agent dies with unshare; the private mount namespace takes the /proc mount with it.
  const child = sim.node.spawn(
    'unshare',
    [
      '--pid',
      '--fork',
      '--kill-child',
      `--mount-proc=${join(container.root, 'proc')}`,
      'chroot',
      container.root,
      // The runtime's chdir to WorkingDir; every step execs, so the agent ends up as PID 1.
      '/bin/sh',
      '-c',
      'cd "$0" && exec "$@"',
      cfg.workingDir,
      ...argv,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, argv, out: () => out, exited };
}

/** Host pid of the process that is PID 1 in its own pid namespace inside the node's network namespace. */
async function containerInitPid(sim: SimNode): Promise<number | undefined> {
  const r = await run('ip', ['netns', 'pids', sim.node.name]);
  for (const p of r.stdout.split('\n').map((s) => Number(s.trim()))) {
    if (!(p > 0)) continue;
    let status = '';
    try {
      status = readFileSync(`/proc/${p}/status`, 'utf8');
    } catch {
      continue;
    }
    if (/^NSpid:\s+\d+\s+1$/m.test(status)) return p;
  }
  return undefined;
}

async function waitServing(sim: SimNode, pod: Pod, backend: Backend): Promise<number> {
  let pid: number | undefined;
  const ready = waitFor(
    'the image to serve and install its rules',
    async () => {
      if (!pod.out().includes('[INFO] Start-up complete: serving')) return false;
      if ((await nodeLocalRules(sim, backend)).length !== RULES) return false;
      pid = await containerInitPid(sim);
      const r = await dig(sim.pod, SIM.localDnsIp, 'kubernetes.default.svc.cluster.local', 'A', { timeoutSec: 1 });
      return pid !== undefined && r.status === 'NOERROR';
    },
    60_000,
    200,
  );
  const died = pod.exited.then(({ code, signal }) => {
    throw new Error(`the entrypoint exited early (code ${code}, signal ${signal})`);
  });
  await Promise.race([ready, died]).catch((err: Error) => {
    throw new Error(`${err.message}\noutput:\n${pod.out()}`);
  });
  died.catch(() => undefined);
  return pid!;
}

async function runOnNode(cfg: ImageConfig, image: string, backend: Backend, diag: (s: string) => void): Promise<void> {
  const other: Backend = backend === 'legacy' ? 'nft' : 'legacy';
  const sim = await createSimNode();
  let container: MountedContainer | undefined;
  let pod: Pod | undefined;
  try {
    await kubeProxyOn(sim, backend);
    container = await createMounted(image);
    await podVolumes(container);
    pod = startPod(sim, container, cfg);
    const pid = await waitServing(sim, pod, backend);
    const out = pod.out();

    assert.match(out, new RegExp(`node-local-dns: iptables back end: ${backend}\\n`));
    // UDP is served by the addon the build stage compiled (native/udp.c), not the dgram fallback.
    assert.match(out, /\[INFO\] UDP I\/O: batched/);
    assert.equal(readlinkSync(join(container.root, 'etc/alternatives/iptables')), `/usr/sbin/iptables-${backend}`);
    assert.equal(readlinkSync(join(container.root, 'etc/alternatives/ip6tables')), `/usr/sbin/ip6tables-${backend}`);

    // The agent itself is PID 1: every step of the entrypoint exec'd.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((s) => s !== '');
    assert.deepEqual(cmdline, ['node', '/app/bin/node-local-dns.js', ...pod.argv.slice(1)]);
    assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m);

    const rules = await nodeLocalRules(sim, backend);
    assert.equal(rules.length, RULES, rules.join('\n'));
    assert.ok(
      rules.every((l) => l.includes(`-d ${SIM.localDnsIp}/32`) || l.includes(`-s ${SIM.localDnsIp}/32`)),
      rules.join('\n'),
    );
    assert.deepEqual(await nodeLocalRules(sim, other), [], `no rules through iptables-${other}`);
    assert.match(await sim.node.exec('ip', ['-4', 'addr', 'show', 'nodelocaldns']), new RegExp(`inet ${SIM.localDnsIp.replaceAll('.', '\\.')}/32`));

    for (const tcp of [false, true]) {
      const what = `${backend} ${tcp ? 'tcp' : 'udp'}`;
      const svc = await dig(sim.pod, SIM.localDnsIp, 'web.default.svc.cluster.local', 'A', { tcp });
      assert.equal(svc.status, 'NOERROR', `${what}\n${svc.raw}`);
      assert.deepEqual(
        svc.answers.map((l) => l.split(' ').slice(2).join(' ')),
        ['IN A 198.18.2.20'],
        what,
      );
      const ptr = await dig(sim.pod, SIM.localDnsIp, '20.2.18.198.in-addr.arpa', 'PTR', { tcp });
      assert.deepEqual(
        ptr.answers.map((l) => l.split(' ').at(-1)),
        ['web.default.svc.cluster.local.'],
        what,
      );
      const ext = await dig(sim.pod, SIM.localDnsIp, 'www.example.org', 'A', { tcp });
      assert.deepEqual(
        ext.answers.map((l) => l.split(' ').at(-1)),
        ['198.18.5.5'],
        `${what}: through the fixture resolv.conf\n${ext.raw}`,
      );
    }
    const health = await sim.pod.run('curl', ['-sS', '--max-time', '5', '-w', ' %{http_code}', `http://${SIM.localDnsIp}:8080/health`]);
    assert.equal(health.stdout, 'OK 200', health.stderr);
    // Reported, not asserted: the agent-mode footprint of what the DaemonSet runs.
    const rssKiB = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    diag(`${backend}: agent-mode VmRSS after the queries above: ${(rssKiB / 1024).toFixed(1)} MiB`);

    // As the runtime stops a container: SIGTERM to its PID 1.
    process.kill(pid, 'SIGTERM');
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit within 20 s of SIGTERM\n${pod!.out()}`)), 20_000).unref());
    assert.deepEqual(await Promise.race([pod.exited, timeout]), { code: 0, signal: null }, pod.out());
    assert.match(pod.out(), /\[INFO\] Tearing down/);
    assert.deepEqual(await nodeLocalRules(sim, backend), []);
    assert.equal(await linkExists(sim, 'nodelocaldns'), false);
    const fallback = await dig(sim.pod, SIM.kubeDnsServiceIp, 'kubernetes.default.svc.cluster.local', 'A');
    assert.deepEqual(
      fallback.answers.map((l) => l.split(' ').at(-1)),
      ['198.18.0.1'],
      "kube-proxy's rules are untouched",
    );
    diag(`${backend}: served, ${RULES} rules via iptables-${backend}, /health OK, SIGTERM → exit 0 with rules and interface removed`);
  } finally {
    if (pod !== undefined && pod.child.exitCode === null && pod.child.signalCode === null) {
      const pid = await containerInitPid(sim);
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
      pod.child.kill('SIGKILL');
      await pod.exited;
    }
    await sim.teardown();
    if (container !== undefined) await container.remove();
  }
}

// ---------------------------------------------------------------- the test

test('the image: the Dockerfile built with podman and run on a simulated node', { skip, timeout: 1_200_000 }, async (t) => {
  const diag = (s: string): void => t.diagnostic(s);
  const started = performance.now();
  await sweepStale(IMAGE_REPOSITORY);

  const base = await standInBase(diag);
  diag(`stand-in base ${base.ref}: ${base.built ? 'built' : 'cached'} in ${base.seconds.toFixed(1)} s`);

  const image = `${IMAGE_REPOSITORY}:${process.pid}`;
  t.after(async () => {
    await run('podman', ['rmi', '--force', image]);
  });
  const buildStarted = performance.now();
  const build = await run(
    'podman',
    [
      'build',
      '--isolation',
      'chroot',
      '--layers=false',
      '--pull=never',
      '--build-arg',
      `NODE_IMAGE=${base.ref}`,
      '--tag',
      image,
      '--file',
      join(ROOT, 'Dockerfile'),
      ROOT,
    ],
    { timeoutMs: 600_000 },
  );
  const buildSeconds = (performance.now() - buildStarted) / 1000;
  assert.equal(build.code, 0, `podman build failed:\n${build.stdout.slice(-4000)}\n${build.stderr.slice(-4000)}`);
  diag(`podman build (--isolation chroot, no layer cache): ${buildSeconds.toFixed(1)} s`);
  const cfg = await inspectImage(image);

  await t.test('ships the agent and its production dependencies only', { timeout: 120_000 }, async () => {
    // A created container's root: the image as it ships, before anything ran in it.
    const c = await createMounted(image);
    try {
      const app = join(c.root, 'app');
      // The production bundle (docker/bundle.mjs), not src/: the bundled entry, its chunks and
      // the worker script, JavaScript only.
      assert.deepEqual(readdirSync(app).sort(), ['.node-compile-cache', 'bin', 'build', 'dist', 'node_modules', 'package.json']);
      assert.deepEqual(filesUnder(join(app, 'bin')), ['node-local-dns.js']);
      assert.match(readFileSync(join(app, 'bin/node-local-dns.js'), 'utf8'), /from "\.\.\/dist\/[\w-]+\.js"/);
      const dist = filesUnder(join(app, 'dist'));
      assert.ok(dist.includes('worker.js'), 'dist/worker.js');
      assert.deepEqual(
        dist.filter((f) => !/^[\w-]+\.js$/.test(f)),
        [],
        'dist/ holds JavaScript modules only',
      );
      // The addon stage's output only: the .node file, no sources, objects or compiler.
      assert.deepEqual(filesUnder(join(app, 'build')), ['Release/udp.node']);
      for (const p of ['usr/bin/gcc', 'usr/bin/make', 'usr/bin/python3']) assert.equal(existsSync(join(c.root, p)), false, p);
      assert.ok(filesUnder(join(app, '.node-compile-cache')).length > 0, 'compile cache warmed at build time');
      const parts = ['node_modules', 'dist', '.node-compile-cache'].map((d) => `${d} ${mib(bytesUnder(join(app, d)))}`);
      diag(`/app: ${mib(bytesUnder(app))} (${parts.join(', ')})`);
      const tests = filesUnder(app).filter((f) => /\.test\.ts$/.test(f) || f.startsWith('test/'));
      assert.deepEqual(tests, []);

      // node_modules: exactly the lockfile's non-dev packages.
      const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
      const prod = Object.entries(lock.packages)
        .filter(([k, v]) => k.startsWith('node_modules/') && v.dev !== true)
        .map(([k]) => k)
        .sort();
      assert.deepEqual(installedPackages(app), prod);
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
      for (const dev of Object.keys(pkg.devDependencies)) assert.equal(existsSync(join(app, 'node_modules', dev)), false, dev);

      for (const p of [
        'usr/local/bin/npm',
        'usr/local/bin/npx',
        'usr/local/bin/corepack',
        'usr/local/lib/node_modules/npm',
        'usr/local/lib/node_modules/corepack',
      ]) {
        assert.equal(existsSync(join(c.root, p)), false, `/${p}`);
      }
      assert.ok(existsSync(join(c.root, 'usr/local/bin/node')));
      // Nothing of the build machine's name service (the runtime mounts these; the build
      // leaves at most an empty mount point).
      for (const p of ['etc/resolv.conf', 'etc/hostname', 'etc/hosts']) {
        const f = join(c.root, p);
        assert.equal(existsSync(f) ? lstatSync(f).size : 0, 0, `/${p} is empty`);
      }
      assert.equal(
        existsSync(join(c.root, 'var/lib/apt/lists/partial'))
          ? readdirSync(join(c.root, 'var/lib/apt/lists')).filter((f) => f !== 'partial' && f !== 'lock').length
          : 0,
        0,
        'apt lists removed',
      );
      assert.deepEqual(
        (await readdir(join(c.root, 'var/cache/apt'))).filter((f) => f.endsWith('.bin')),
        [],
        "apt's binary caches removed",
      );
    } finally {
      await c.remove();
    }
    // The machine's registry configuration and CAs are in the stand-in base only.
    const diff = (await podman(['diff', base.ref, image])).split('\n');
    const machine = diff.filter((l) => /\s\/(root\/\.npmrc|usr\/local\/etc\/npmrc|etc\/ssl\/certs\/ca-certificates\.crt|etc\/apt\/.+)$/.test(l));
    assert.deepEqual(machine, []);
  });

  for (const backend of ['legacy', 'nft'] as const) {
    await t.test(`runs on a node whose kube-proxy uses iptables-${backend}`, { timeout: 240_000 }, async () => {
      await runOnNode(cfg, image, backend, diag);
    });
  }

  await t.test('size', { timeout: 300_000 }, async () => {
    const tree = await podman(['image', 'tree', image]);
    for (const line of tree.split('\n').filter((l) => /ID: \S+ Size:/.test(l))) diag(`layer ${line.replace(/^[\s│├└─]+/, '')}`);
    const gz = await gzippedSaveBytes(image);
    const baseSize = (await inspectImage(base.ref)).sizeBytes;
    diag(
      `image size: ${mib(cfg.sizeBytes)} uncompressed (${mib(cfg.sizeBytes - baseSize)} on top of the ${mib(baseSize)} stand-in base), ${mib(gz)} gzip-compressed`,
    );
    assert.ok(cfg.sizeBytes > baseSize);
  });
  diag(`image test total: ${((performance.now() - started) / 1000).toFixed(1)} s`);
});
