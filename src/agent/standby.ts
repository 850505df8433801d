/**
 * Peers: several node-local-dns instances serving the same local IPs on one node, so that one of
 * them can restart while another keeps answering: a primary and a standby (each in its own
 * DaemonSet), and two instances of one DaemonSet while it rolls with `maxSurge: 1` (the new pod
 * starts beside the old one, same role). Their UDP/TCP and HTTP sockets share the addresses
 * through SO_REUSEPORT; this module decides who may touch the node's network set-up (interface
 * and rules) and tells an instance when a newer one of its role is starting.
 *
 * Liveness contract (the peer directory, `-peerdir`, a hostPath shared by every instance):
 *  - Each instance listens on a unix socket `<dir>/<role>-<scope>-<pid>-<nonce>.sock` for as
 *    long as it runs. The socket is bound under a hidden temporary name and renamed into place
 *    once listening, so a visible name never refuses a connection while its owner lives.
 *  - A peer is alive when a connection to its socket succeeds: the kernel refuses connections to
 *    a socket whose process is gone, whatever killed it (SIGKILL, OOM kill, crash). A refused
 *    connection marks a stale socket, which is removed. Any other failure (permissions, a full
 *    backlog, no answer in time) counts as alive: when in doubt, do not tear down.
 *  - `scope` is a hash of the network namespace, the DNS port and the local IPs: only instances
 *    with the same scope are peers (instances on other network namespaces or other addresses
 *    sharing the directory are ignored). The pid in the name is informative only: containers
 *    have their own pid namespaces, so it may repeat; the nonce makes the name unique.
 *  - Protocol on the socket: the client writes one line, `status`, `sync` or `joining <role>`;
 *    the server answers one JSON line (PeerStatus) and closes. `sync` asks a primary to re-check
 *    its interface and rules now (sent by an instance that tore them down while a new primary
 *    was starting). `joining <role>` is sent by a new instance to every live peer once it is
 *    registered, before it opens any listener: the server has heard it before it answers, so a
 *    peer of that role knows a newer instance is starting before that instance's /ready port
 *    can take a probe (agent.ts: ready while a newer instance starts). Any other line is
 *    answered as `status` (what instances before `joining` do with it too).
 *  - `fds` (native addon only): a serving primary answers one short line (`fds <n>`) carrying
 *    its listening DNS sockets as SCM_RIGHTS (native/fdpass.c): every bound, unconnected
 *    SO_REUSEPORT UDP socket of the process, workers' included, then every listening
 *    SO_REUSEPORT TCP socket on the address and port of one of those (the DNS listeners' TCP
 *    twins; HTTP listeners are not passed), at most MAX_PASSED_FDS. A standby serves them
 *    beside its own (src/server/udp-adopt.ts, SocketAdoption below), so a SIGKILLed primary's
 *    sockets stay open, their queues are read and accepted by the standby. Anything else (no
 *    addon, not a serving primary, no such socket) answers the status line, as `status`.
 *  - Leaving: close the socket and unlink it (`leave()`), then look for live peers. The last
 *    instance to leave therefore sees none, and is the one that tears the network set-up down.
 */
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readdirSync } from 'node:fs';
import { lstat, mkdir, readdir, readlink, rename, rm, stat } from '../util/fs-async.ts';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { BroadcastChannel } from 'node:worker_threads';
import type { Logger } from '../plugin.ts';
import { ADOPT_CHANNEL, type AdoptMessage, listenForAdoption, tcpListenerName } from '../server/udp-adopt.ts';
import { type UdpAddon, loadUdpAddon } from '../server/udp-native.ts';
import type { CommandRunner } from './exec.ts';

export const PeerRole = { PRIMARY: 'primary', STANDBY: 'standby' } as const;
export type PeerRole = (typeof PeerRole)[keyof typeof PeerRole];

function isPeerRole(v: unknown): v is PeerRole {
  return v === PeerRole.PRIMARY || v === PeerRole.STANDBY;
}

export const PeerPhase = { STARTING: 'starting', SERVING: 'serving', STOPPING: 'stopping' } as const;
export type PeerPhase = (typeof PeerPhase)[keyof typeof PeerPhase];

/** How long a probe waits for a connected peer's status line. */
const PEER_PROBE_TIMEOUT_MS = 1000;
/** A hidden temporary socket left by a crash between bind and rename is removed after this. */
const STALE_TMP_AGE_MS = 60_000;
/** Longest request line a peer server reads. */
const MAX_REQUEST_BYTES = 64;
/** Connections served at once on the peer socket (peers probe once per sync interval); more are closed at accept. */
const MAX_PEER_CONNECTIONS = 32;
/**
 * Descriptors passed per `fds` answer (fdpass.c takes at most 128; the kernel's SCM_MAX_FD is
 * 253). 128 since TCP listeners are passed too (one UDP and one TCP socket per serving thread
 * and address): it covers what 64 covered for UDP alone, 32 serving threads on 2 addresses.
 * Beyond it UDP sockets come first.
 */
const MAX_PASSED_FDS = 128;
/** sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

export const PeerErrorCode = {
  DIR: 'ERR_PEER_DIR',
  LISTEN: 'ERR_PEER_LISTEN',
  ABORTED: 'ERR_PEER_ABORTED',
} as const;
export type PeerErrorCode = (typeof PeerErrorCode)[keyof typeof PeerErrorCode];

export class PeerError extends Error {
  readonly code: PeerErrorCode;
  constructor(code: PeerErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PeerError';
    this.code = code;
  }
}

/** What a peer answers on its socket. */
export interface PeerStatus {
  id: string;
  role: PeerRole;
  pid: number;
  scope: string;
  phase: PeerPhase;
  version: string;
  /** ISO 8601. */
  startedAt: string;
}

export interface PeerName {
  role: PeerRole;
  scope: string;
  pid: number;
  nonce: string;
}

const NAME_RE = /^(primary|standby)-([0-9a-f]{8})-(\d{1,10})-([0-9a-f]{8})\.sock$/;
const TMP_RE = /^\.(primary|standby)-[0-9a-f]{8}-\d{1,10}-[0-9a-f]{8}\.sock\.tmp$/;

/** Parses a peer socket file name; undefined for any other file. */
export function parsePeerName(name: string): PeerName | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  return { role: m[1] as PeerRole, scope: m[2]!, pid: Number(m[3]), nonce: m[4]! };
}

export function formatPeerName(p: PeerName): string {
  return `${p.role}-${p.scope}-${p.pid}-${p.nonce}.sock`;
}

/** 8 hex digits identifying "these addresses on this network": netns, DNS port, sorted local IPs. */
export function peerScope(netns: string, localIps: readonly string[], dnsPort: number): string {
  const key = `${netns}|${dnsPort}|${[...localIps]
    .map((ip) => ip.toLowerCase())
    .sort()
    .join(',')}`;
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/**
 * Identity of the network namespace the set-up is made in (`net:[4026531840]`). With a runner
 * (which may enter another namespace) it is read through the runner; else from /proc/self.
 * Returns 'unknown' when it cannot be read: then every instance with the same IPs is a peer.
 */
export async function networkNamespaceId(runner?: CommandRunner): Promise<string> {
  try {
    if (runner) {
      const r = await runner('readlink', ['/proc/self/ns/net']);
      const out = r.stdout.trim();
      return r.code === 0 && out !== '' ? out : 'unknown';
    }
    return await readlink('/proc/self/ns/net');
  } catch {
    return 'unknown';
  }
}

/** The request lines of the protocol (header). */
export type PeerRequest = 'status' | 'sync' | `joining ${PeerRole}`;

export type ProbeResult =
  | { state: 'alive'; status: PeerStatus | undefined; detail: string }
  | { state: 'stale'; detail: string }
  | { state: 'gone'; detail: string };

function parseStatus(line: string): PeerStatus | undefined {
  try {
    const v = JSON.parse(line) as Partial<PeerStatus>;
    if (typeof v !== 'object' || v === null) return undefined;
    if (typeof v.id !== 'string' || !isPeerRole(v.role) || typeof v.pid !== 'number') return undefined;
    return {
      id: v.id,
      role: v.role,
      pid: v.pid,
      scope: String(v.scope ?? ''),
      phase: (Object.values(PeerPhase) as string[]).includes(String(v.phase)) ? (v.phase as PeerPhase) : PeerPhase.SERVING,
      version: String(v.version ?? ''),
      startedAt: String(v.startedAt ?? ''),
    };
  } catch {
    return undefined;
  }
}

/**
 * Connects to a peer socket, sends `request`, reads the status line.
 *  - connection refused on a socket → stale (nothing listens: the owner is dead);
 *  - no such file / not a socket    → gone (not a peer);
 *  - connected (answer or not)     → alive;
 *  - any other error               → alive (unknown: counted as alive so nobody tears down under it).
 */
export function probePeer(path: string, request: PeerRequest = 'status', timeoutMs = PEER_PROBE_TIMEOUT_MS): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let connected = false;
    let buf = '';
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const sock: Socket = connect({ path });
    const timer = setTimeout(() => {
      finish(
        connected
          ? { state: 'alive', status: undefined, detail: `connected, no answer within ${timeoutMs} ms` }
          : { state: 'alive', status: undefined, detail: `connect did not complete within ${timeoutMs} ms` },
      );
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      connected = true;
      sock.write(`${request}\n`);
    });
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > 4096) finish({ state: 'alive', status: undefined, detail: 'oversized answer' });
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish({ state: 'alive', status: parseStatus(buf.slice(0, nl)), detail: 'answered' });
    });
    sock.on('end', () => {
      finish({ state: 'alive', status: parseStatus(buf), detail: 'answered' });
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) {
        finish({ state: 'alive', status: parseStatus(buf), detail: `connected, then ${err.code ?? err.message}` });
      } else if (err.code === 'ECONNREFUSED') {
        // Linux refuses connections to a non-socket file too: only a socket is a stale peer.
        lstat(path).then(
          (st) => finish(st.isSocket() ? { state: 'stale', detail: 'connection refused' } : { state: 'gone', detail: 'not a socket' }),
          () => finish({ state: 'gone', detail: 'vanished' }),
        );
      } else if (err.code === 'ENOENT' || err.code === 'ENOTSOCK') {
        finish({ state: 'gone', detail: err.code });
      } else {
        finish({ state: 'alive', status: undefined, detail: `cannot tell (${err.code ?? err.message}), counted as alive` });
      }
    });
  });
}

/** A live peer as seen by `PeerRegistry.peers()`. */
export interface LivePeer {
  path: string;
  name: PeerName;
  status: PeerStatus | undefined;
  detail: string;
}

/** One line describing a peer for logs: `standby pid 42 (serving)`. */
export function describePeer(p: LivePeer): string {
  return `${p.name.role} pid ${p.name.pid} (${p.status ? p.status.phase : p.detail})`;
}

export interface PeerRegistryOptions {
  dir: string;
  role: PeerRole;
  scope: string;
  version: string;
  log: Logger;
  probeTimeoutMs?: number;
}

/** This instance's registration in the peer directory, and the view of the others. */
export class PeerRegistry {
  readonly dir: string;
  readonly role: PeerRole;
  readonly scope: string;
  readonly id: string;
  readonly path: string;
  phase: PeerPhase = PeerPhase.STARTING;
  readonly #log: Logger;
  readonly #version: string;
  readonly #startedAt = new Date().toISOString();
  readonly #probeTimeoutMs: number;
  #server: Server | undefined;
  #onSync: (() => void) | undefined;
  #syncRequested = false;
  #onJoining: ((role: PeerRole) => void) | undefined;
  #left: Promise<void> | undefined;

  private constructor(opts: PeerRegistryOptions, name: string) {
    this.dir = opts.dir;
    this.role = opts.role;
    this.scope = opts.scope;
    this.id = name.slice(0, -'.sock'.length);
    this.path = join(opts.dir, name);
    this.#log = opts.log;
    this.#version = opts.version;
    this.#probeTimeoutMs = opts.probeTimeoutMs ?? PEER_PROBE_TIMEOUT_MS;
  }

  /** Creates the directory if needed, removes stale sockets, and starts listening. */
  static async join(opts: PeerRegistryOptions): Promise<PeerRegistry> {
    const name = formatPeerName({ role: opts.role, scope: opts.scope, pid: process.pid, nonce: randomBytes(4).toString('hex') });
    const reg = new PeerRegistry(opts, name);
    if (Buffer.byteLength(join(opts.dir, `.${name}.tmp`)) > MAX_SOCKET_PATH_BYTES) {
      throw new PeerError(PeerErrorCode.DIR, `peer directory path ${opts.dir} is too long for a unix socket`);
    }
    try {
      await mkdir(opts.dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new PeerError(PeerErrorCode.DIR, `cannot create peer directory ${opts.dir}: ${(err as Error).message}`, { cause: err });
    }
    await reg.#sweep();
    await reg.#listen(name);
    return reg;
  }

  async #listen(name: string): Promise<void> {
    const tmp = join(this.dir, `.${name}.tmp`);
    const server = createServer((sock) => this.#serve(sock));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ path: tmp, backlog: 64 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      await rename(tmp, this.path);
    } catch (err) {
      server.close();
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new PeerError(PeerErrorCode.LISTEN, `cannot listen on ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    server.on('error', (err) => this.#log.error(`peer socket ${this.path}: ${err.message}`));
    server.maxConnections = MAX_PEER_CONNECTIONS;
    server.unref();
    this.#server = server;
  }

  /**
   * One request line, one answer, then the connection is closed: what a peer sends after its
   * line (or past MAX_REQUEST_BYTES without one) is never read, so a broken or hostile peer
   * streaming data holds at most one read chunk here and its connection for at most
   * PEER_PROBE_TIMEOUT_MS of silence.
   */
  #serve(sock: Socket): void {
    sock.unref();
    sock.setTimeout(PEER_PROBE_TIMEOUT_MS, () => sock.destroy());
    sock.on('error', () => sock.destroy());
    let req = '';
    let answered = false;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      if (answered) return;
      req += d;
      const nl = req.indexOf('\n');
      if (nl < 0 && req.length <= MAX_REQUEST_BYTES) return;
      answered = true;
      sock.pause();
      const line = (nl >= 0 ? req.slice(0, nl) : '').trim();
      req = '';
      if (line === 'sync') this.#requestSync();
      else if (line.startsWith('joining ')) this.#joining(line.slice('joining '.length));
      if (line === 'fds' && this.#sendListeningSockets(sock)) return;
      sock.end(`${JSON.stringify(this.status())}\n`, () => sock.destroy());
    });
  }

  #joining(role: string): void {
    if (isPeerRole(role)) this.#onJoining?.(role);
  }

  /**
   * `fds`: a serving primary passes its listening UDP and TCP sockets (see the module comment) and
   * closes the connection. False when there is nothing to pass (the caller answers the status
   * line); a failed send closes the connection (the peer sees no descriptors).
   */
  #sendListeningSockets(sock: Socket): boolean {
    if (this.role !== PeerRole.PRIMARY || this.phase !== PeerPhase.SERVING) return false;
    const { addon } = loadUdpAddon();
    if (addon === null || typeof addon.sendFds !== 'function') return false;
    const unixFd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof unixFd !== 'number' || unixFd < 0) return false;
    const fds = listeningFds(addon);
    if (fds.length === 0) return false;
    try {
      addon.sendFds(unixFd, fds, `fds ${fds.length}\n`);
    } catch (err) {
      this.#log.warn(`Cannot pass the listening sockets to a peer: ${(err as Error).message}`);
    }
    sock.destroy();
    return true;
  }

  #requestSync(): void {
    if (this.#onSync) this.#onSync();
    else this.#syncRequested = true;
  }

  /** Our status line. */
  status(): PeerStatus {
    return {
      id: this.id,
      role: this.role,
      pid: process.pid,
      scope: this.scope,
      phase: this.phase,
      version: this.#version,
      startedAt: this.#startedAt,
    };
  }

  /** Called on a peer's `sync` request (at once if one arrived before this was set). */
  onSync(cb: () => void): void {
    this.#onSync = cb;
    if (this.#syncRequested) {
      this.#syncRequested = false;
      cb();
    }
  }

  /** Called when a new instance of our scope announces itself (`joining <role>`), before we answer it. */
  onJoining(cb: (role: PeerRole) => void): void {
    this.#onJoining = cb;
  }

  /**
   * Tells every live peer of our scope that this instance is starting (`joining <role>`), in
   * parallel; resolves once each has answered or timed out. Returns the peers found.
   */
  async announceJoining(): Promise<LivePeer[]> {
    const live = await this.peers();
    await Promise.all(live.map((p) => probePeer(p.path, `joining ${this.role}`, this.#probeTimeoutMs)));
    return live;
  }

  /** Removes stale sockets of any scope (dead owners) and old temporary names. */
  async #sweep(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      const path = join(this.dir, n);
      if (TMP_RE.test(n)) {
        const st = await stat(path).catch(() => undefined);
        if (st && Date.now() - st.mtimeMs > STALE_TMP_AGE_MS && (await probePeer(path, 'status', this.#probeTimeoutMs)).state === 'stale') {
          await rm(path, { force: true }).catch(() => undefined);
        }
        continue;
      }
      const name = parsePeerName(n);
      if (!name || path === this.path) continue;
      if ((await probePeer(path, 'status', this.#probeTimeoutMs)).state === 'stale') {
        await rm(path, { force: true }).catch(() => undefined);
        this.#log.info(`Removed stale peer socket ${path} (its instance is gone)`);
      }
    }
  }

  /**
   * The other live instances of our scope, probed in parallel. Sockets of dead instances are
   * removed. A directory that cannot be read yields no peers (and an error line).
   */
  async peers(): Promise<LivePeer[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      this.#log.error(`Cannot read peer directory ${this.dir}: ${(err as Error).message}`);
      return [];
    }
    const candidates = names
      .map((n) => ({ n, name: parsePeerName(n) }))
      .filter((c): c is { n: string; name: PeerName } => c.name !== undefined && c.name.scope === this.scope && join(this.dir, c.n) !== this.path);
    const probed = await Promise.all(
      candidates.map(async (c) => {
        const path = join(this.dir, c.n);
        return { path, name: c.name, r: await probePeer(path, 'status', this.#probeTimeoutMs) };
      }),
    );
    const live: LivePeer[] = [];
    for (const p of probed) {
      if (p.r.state === 'stale') {
        await rm(p.path, { force: true }).catch(() => undefined);
        this.#log.info(`Removed stale peer socket ${p.path} (its instance is gone)`);
      } else if (p.r.state === 'alive') {
        live.push({ path: p.path, name: p.name, status: p.r.status, detail: p.r.detail });
      }
    }
    return live;
  }

  /** Asks a live peer to re-check its network set-up now; false when it could not be reached. */
  async requestSync(peer: LivePeer): Promise<boolean> {
    return (await probePeer(peer.path, 'sync', this.#probeTimeoutMs)).state === 'alive';
  }

  /** Stops answering and removes our socket; from now on peers no longer count us. Idempotent. */
  leave(): Promise<void> {
    this.#left ??= (async () => {
      const s = this.#server;
      this.#server = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
      await rm(this.path, { force: true }).catch(() => undefined);
    })();
    return this.#left;
  }
}

/**
 * This process's DNS listening sockets (any thread's), at most MAX_PASSED_FDS: the UDP ones
 * (bound, unconnected, SO_REUSEPORT), then the listening SO_REUSEPORT TCP ones bound to the
 * address and port of a UDP one (a DNS listener's TCP twin; the HTTP listeners have none).
 */
function listeningFds(addon: UdpAddon): number[] {
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return [];
  }
  const udp: number[] = [];
  const udpNames = new Set<string>();
  const tcp: { fd: number; name: string }[] = [];
  for (const n of names) {
    const fd = Number(n);
    if (!Number.isInteger(fd) || fd < 0) continue;
    const u = addon.udpListenerName(fd);
    if (u !== '') {
      udp.push(fd);
      udpNames.add(u);
      continue;
    }
    const t = tcpListenerName(addon, fd);
    if (t !== '') tcp.push({ fd, name: t });
  }
  return [...udp, ...tcp.filter((t) => udpNames.has(t.name)).map((t) => t.fd)].slice(0, MAX_PASSED_FDS);
}

/**
 * A standby's adoption of the live primaries' listening sockets (main thread side; the serving
 * threads' side is src/server/udp-adopt.ts, which the messages below reach through a
 * BroadcastChannel). `update` runs on every look at the peers (each -syncinterval): it asks the
 * serving threads to adopt the sockets of every serving primary they do not hold yet, and to
 * hand over those of primaries that are gone (UDP: connect away, drain, close; TCP: accept
 * until EAGAIN and close in one native call; nothing queued is lost). A
 * SIGKILLed primary is therefore served through its own sockets until the next look, then its
 * sockets are released: kills never accumulate sockets. `stop` releases everything before the
 * engine stops: sockets of live primaries are closed (they keep theirs), of dead ones handed over.
 * Disabled (`create` returns undefined) without the addon's fdpass, or with
 * NODE_LOCAL_DNS_ADOPT=0.
 */
export class SocketAdoption {
  readonly #channel: BroadcastChannel;
  /** Primaries (peer socket paths) whose sockets were offered to the serving threads. */
  readonly #owners = new Set<string>();
  readonly #log: Logger;

  private constructor(log: Logger) {
    this.#log = log;
    // This thread's own listeners (one serving thread); workers listen from their start.
    listenForAdoption();
    const { BroadcastChannel } = process.getBuiltinModule('node:worker_threads');
    this.#channel = new BroadcastChannel(ADOPT_CHANNEL);
    this.#channel.unref();
  }

  static create(log: Logger): SocketAdoption | undefined {
    if (process.env.NODE_LOCAL_DNS_ADOPT === '0') return undefined;
    const { addon } = loadUdpAddon();
    if (addon === null || typeof addon.recvFds !== 'function') return undefined;
    return new SocketAdoption(log);
  }

  #post(m: AdoptMessage): void {
    this.#channel.postMessage(m);
  }

  /** `live`: the peers alive now (PeerRegistry.peers()). */
  update(live: readonly LivePeer[]): void {
    const alive = new Set(live.map((p) => p.path));
    for (const owner of this.#owners) {
      if (alive.has(owner)) continue;
      this.#owners.delete(owner);
      this.#log.info(`standby: releasing the listening sockets adopted from ${owner} (its instance is gone)`);
      this.#post({ type: 'release', owner, handOver: true });
    }
    for (const p of live) {
      if (p.name.role !== PeerRole.PRIMARY || p.status?.phase !== PeerPhase.SERVING) continue;
      if (!this.#owners.has(p.path)) this.#log.info(`standby: adopting the listening UDP and TCP sockets of ${describePeer(p)}`);
      this.#owners.add(p.path);
      // Repeated on every look: a thread that could not adopt yet (busy primary) tries again.
      this.#post({ type: 'adopt', owner: p.path, path: p.path });
    }
  }

  /** Before the engine stops: hand over the sockets of gone primaries, close those of live ones. */
  stop(live: readonly LivePeer[]): void {
    const alive = new Set(live.map((p) => p.path));
    for (const owner of this.#owners) this.#post({ type: 'release', owner, handOver: !alive.has(owner) });
    this.#owners.clear();
    this.#channel.close();
  }
}

/** The local IPs that cannot be bound here yet (not assigned to any interface of this namespace). */
export async function unboundableIps(ips: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const ip of ips) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket({ type: ip.includes(':') ? 'udp6' : 'udp4' });
      s.once('error', () => {
        s.close();
        resolve(false);
      });
      s.bind({ address: ip, port: 0, exclusive: true }, () => {
        s.close();
        resolve(true);
      });
    });
    if (!ok) missing.push(ip);
  }
  return missing;
}

/**
 * Waits until every local IP can be bound (the primary has set up the interface). Logs once when
 * it has to wait. Rejects with PeerError(aborted) when `signal` aborts.
 */
export async function waitForLocalIps(ips: readonly string[], opts: { log: Logger; signal?: AbortSignal; pollMs?: number; what?: string }): Promise<void> {
  let announced = false;
  for (;;) {
    if (opts.signal?.aborted) throw new PeerError(PeerErrorCode.ABORTED, 'stopped while waiting for the local IPs');
    const missing = await unboundableIps(ips);
    if (missing.length === 0) {
      if (announced) opts.log.info(`${opts.what ?? 'Local IPs'} ${ips.join(', ')} are now present`);
      return;
    }
    if (!announced) {
      opts.log.info(`Waiting for ${missing.join(', ')} to be set up by the primary before serving`);
      announced = true;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, opts.pollMs ?? 500);
      function done() {
        opts.signal?.removeEventListener('abort', done);
        clearTimeout(t);
        resolve();
      }
      opts.signal?.addEventListener('abort', done, { once: true });
    });
  }
}
