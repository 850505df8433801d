/**
 * Which UDP I/O path the listeners use, and the native addon behind the batched one
 * (native/udp.c, built by `npm ci` into build/Release/udp.node; native/README.md).
 *
 * NODE_LOCAL_DNS_UDP_IO selects it:
 *  - `auto` (default): batched when the addon loads (Linux, built), else Node's dgram;
 *  - `batched`: the addon, and an error when it does not load (tests use this to be sure);
 *  - `dgram`: Node's dgram, as before the addon existed.
 * NODE_LOCAL_DNS_ADDON overrides the addon's path (the ASan build, see native/asan.ts).
 * The choice is made once per thread and logged once per process (main thread) at start.
 * Exported as nodelocaldns_udp_io{mode} = 1, with the batched path's drop counters.
 */
import { createRequire } from 'node:module';
import type { SnapshotBuilder } from '../metrics/snapshot.ts';
import { log } from '../util/log.ts';

export const UdpIo = { BATCHED: 'batched', DGRAM: 'dgram' } as const;
export type UdpIoValue = (typeof UdpIo)[keyof typeof UdpIo];

/** The addon's socket (native/udp.c documents each method). */
export interface NativeUdpSocket {
  bind(address: string, port: number): number;
  setBufferSizes(recvBytes: number, sendBytes: number): void;
  start(
    slots: number,
    slotSize: number,
    recvArena: Uint8Array,
    recvMeta: Int32Array,
    sendArena: Uint8Array,
    sendMeta: Int32Array,
    onBatch: (n: number) => void,
  ): void;
  /** sent | dropped << 11 | errno << 22; negative errno once closed. */
  send(count: number): number;
  connect(address: string, port: number): void;
  /** `ip:port` or `[ip]:port` of the bound socket, '' when unknown. */
  localName(): string;
  close(): void;
}

export interface UdpAddon {
  /** With `adoptFd`, the socket takes over that bound datagram fd instead of creating one. */
  UdpSocket: new (
    family: 4 | 6,
    reusePort: boolean,
    adoptFd?: number,
  ) => NativeUdpSocket;
  META_INTS: number;
  /** native/fdpass.c: SCM_RIGHTS over a connected unix stream socket (never blocks). */
  sendFds(unixFd: number, fds: number[], text: string): number;
  /** native/fdpass.c: connect, write `request`, read one answer and its fds (blocking, bounded by timeoutMs). */
  recvFds(path: string, request: string, timeoutMs: number): { fds: number[]; text: string };
  /** native/fdpass.c: `family|address|port` of a bound, unconnected SO_REUSEPORT UDP socket; '' otherwise. */
  udpListenerName(fd: number): string;
  /** The libuv major.minor whose headers the addon was compiled against (native/build.mjs chooses them). */
  UV_BUILD_VERSION: string;
}

export class UdpIoError extends Error {
  readonly code = 'UDP_IO_UNAVAILABLE';
}

const DEFAULT_ADDON = new URL('../../build/Release/udp.node', import.meta.url);

let loaded: { addon: UdpAddon | null; reason: string } | null = null;

/** Loads the addon once per thread; null (with the reason) when it cannot be used here. */
export function loadUdpAddon(): { addon: UdpAddon | null; reason: string } {
  if (loaded !== null) return loaded;
  if (process.platform !== 'linux') {
    loaded = { addon: null, reason: `not Linux (${process.platform})` };
    return loaded;
  }
  const path = process.env.NODE_LOCAL_DNS_ADDON || DEFAULT_ADDON.pathname;
  try {
    const addon = createRequire(import.meta.url)(path) as UdpAddon;
    if (typeof addon.UdpSocket !== 'function' || addon.META_INTS !== 8) throw new Error('unexpected exports');
    loaded = { addon, reason: '' };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    loaded = {
      addon: null,
      reason:
        e.code === 'MODULE_NOT_FOUND' || (e.code === 'ERR_DLOPEN_FAILED' && /No such file/.test(e.message))
          ? `not built (${path})`
          : `load failed: ${e.message}`,
    };
  }
  return loaded;
}

let selected: UdpIoValue | null = null;

let announceUdpIo = true;

/** Serving workers call this: the start-up line about the UDP I/O path is the main thread's. */
export function quietUdpIoAnnouncement(): void {
  announceUdpIo = false;
}

/**
 * The I/O path this thread's listeners use (decided on first call). Throws UdpIoError when
 * NODE_LOCAL_DNS_UDP_IO=batched and the addon does not load, or the value is unknown.
 */
export function udpIoMode(): UdpIoValue {
  if (selected !== null) return selected;
  const want = process.env.NODE_LOCAL_DNS_UDP_IO || 'auto';
  if (want !== 'auto' && want !== UdpIo.BATCHED && want !== UdpIo.DGRAM) {
    throw new UdpIoError(`NODE_LOCAL_DNS_UDP_IO=${want}: expected auto, batched or dgram`);
  }
  const { addon, reason } = want === UdpIo.DGRAM ? { addon: null, reason: 'NODE_LOCAL_DNS_UDP_IO=dgram' } : loadUdpAddon();
  if (addon === null && want === UdpIo.BATCHED) throw new UdpIoError(`NODE_LOCAL_DNS_UDP_IO=batched but the UDP addon is unavailable: ${reason}`);
  selected = addon !== null ? UdpIo.BATCHED : UdpIo.DGRAM;
  if (announceUdpIo) {
    if (selected === UdpIo.BATCHED) log.info('UDP I/O: batched (native recvmmsg/sendmmsg addon)');
    else log.info(`UDP I/O: dgram (${reason})`);
  }
  return selected;
}

/** The batched path's counters for this thread (plain numbers, read at scrape time). */
export class UdpIoStats {
  /** Replies not sent because the socket's send buffer was full (EAGAIN/ENOBUFS). */
  sendBufferFull = 0;
  /** Replies whose send failed for another reason (EPERM, EINVAL, ...). */
  sendFailed = 0;
  /** Datagrams dropped on receipt: larger than a receive slot (truncated) or from an unknown address family. */
  receiveDropped = 0;
}

export const udpIoStats = new UdpIoStats();

export const UDP_IO_METRICS = {
  mode: {
    name: 'nodelocaldns_udp_io',
    help: 'The UDP I/O path serving the DNS listeners (1 for the one in use): batched (native recvmmsg/sendmmsg) or dgram.',
  },
  sendDropped: {
    name: 'nodelocaldns_udp_send_dropped_total',
    help: 'UDP replies dropped by the batched I/O path, by reason (buffer_full: EAGAIN/ENOBUFS; error: other send errors).',
  },
  receiveDropped: {
    name: 'nodelocaldns_udp_receive_dropped_total',
    help: 'UDP datagrams dropped on receipt by the batched I/O path (larger than a receive slot, or unknown address family).',
  },
} as const;

/** Writes the mode gauge (once a listener chose it) and the batched path's counters. */
export function collectUdpIo(out: SnapshotBuilder): void {
  if (selected === null) return;
  const M = UDP_IO_METRICS;
  out.family(M.mode.name, M.mode.help, 'gauge', { merge: 'max' }).add({ mode: selected }, 1);
  if (selected !== UdpIo.BATCHED) return;
  const s = udpIoStats;
  const sd = out.family(M.sendDropped.name, M.sendDropped.help, 'counter');
  sd.add({ reason: 'buffer_full' }, s.sendBufferFull);
  sd.add({ reason: 'error' }, s.sendFailed);
  out.family(M.receiveDropped.name, M.receiveDropped.help, 'counter').add({}, s.receiveDropped);
}
