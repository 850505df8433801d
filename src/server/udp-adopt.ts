/**
 * Adopted listening sockets: the serving threads' side of the SCM_RIGHTS hand-over
 * (docs/zero-downtime.md, "kill -9: the standby holds the primary's sockets"; the protocol is in
 * src/agent/standby.ts). UDP and TCP (the module keeps its first name).
 *
 * A standby serves, beside its own sockets, the listening UDP and TCP sockets of the live
 * primary, so that when the primary is SIGKILLed its sockets stay open (the standby holds them),
 * the kernel's reuseport steering to them keeps working and their queues are read (UDP) or
 * accepted (TCP) here: a kill loses only what the dead process had already read or accepted.
 *
 * Contract (per serving thread: main thread without workers, else every worker):
 *  - createUdpListener registers every UDP listener here (trackListener) with a factory for a
 *    sibling listener (same address, port, dispatcher and I/O path); every TCP listener
 *    registers once listening (trackTcpListener) and serves an adopted socket through a
 *    TcpAcceptor (tcp.ts): its connections are that listener's, under its bounds.
 *  - The agent's main thread posts on the BroadcastChannel ADOPT_CHANNEL:
 *      {type:'adopt', owner, path}: a thread that holds nothing of `owner` yet asks the peer
 *        socket `path` for its sockets (native recvFds: blocking, bounded by ADOPT_TIMEOUT_MS)
 *        and serves each one that is a listening UDP or TCP socket of one of its own listeners'
 *        address and port (same protocol); the others are closed at once.
 *      {type:'release', owner, handOver}: the owner is gone (handOver true: UDP: connect away,
 *        drain, close, losing nothing, as a leaving listener does; TCP: accept what is queued
 *        and close in one native call, see TcpAcceptor.close) or is alive and we stop (handOver false: plain
 *        close of our descriptors; the owner keeps the socket open and its queue). Never
 *        connect a socket whose owner is alive: that would steer its traffic away from the
 *        live instance.
 *  - Closing a listener first releases (closes) the adopted siblings of its address (TCP: its
 *    acceptors), so a thread that stops or reloads never keeps foreign sockets open. Answers
 *    to queries read from a closed adopted UDP socket go out through its own listener while
 *    that one is open; TCP connections accepted on an adopted socket are the listener's and
 *    outlive the adopted socket.
 * Bounds: per thread at most one set per owner the agent names (the live primaries), each at
 * most MAX_PASSED_FDS descriptors (src/agent/standby.ts, native/fdpass.c), released when the
 * owner is gone. TCP connections accepted on adopted sockets count against the thread's
 * TcpBudget like any other (tcp.ts).
 * Without the addon (or an addon without fdpass) nothing is adopted.
 */
import { closeSync } from 'node:fs';
import type { BroadcastChannel } from 'node:worker_threads';
import type { TcpAcceptor, TcpListener } from './tcp.ts';
import type { UdpListener } from './udp.ts';
import { type UdpAddon, loadUdpAddon } from './udp-native.ts';
import { log } from '../util/log.ts';

export const ADOPT_CHANNEL = 'node-local-dns:udp-adopt';
/**
 * Bound of each blocking step of recvFds (connect, request write, answer read): the serving
 * thread does not read its sockets meanwhile (they queue). A primary answers from its control
 * thread in well under a millisecond when it is healthy.
 */
export const ADOPT_TIMEOUT_MS = 250;
/** Attempts per owner and thread that adopted nothing (error, timeout, no matching socket); then that owner is left alone. */
const MAX_ATTEMPTS = 3;
/** How long a released socket whose owner is gone may take to drain. */
const RELEASE_DRAIN_MS = 5000;

export type AdoptMessage = { type: 'adopt'; owner: string; path: string } | { type: 'release'; owner: string; handOver: boolean };

interface Tracked {
  listener: UdpListener;
  sibling: () => UdpListener;
}

interface Adopted {
  owner: string;
  parent: UdpListener;
  listener: UdpListener;
  releasing: Promise<void> | null;
}

interface AdoptedTcp {
  owner: string;
  acceptor: TcpAcceptor;
  releasing: Promise<void> | null;
}

/** native/fdpass.c's tcpListenerName (absent from an addon built before it). */
type TcpNaming = { tcpListenerName?: (fd: number) => string };

/** native/fdpass.c's helpers for releasing a dead peer's listening TCP socket (TcpAcceptor.close). */
export interface ListenerDrain {
  dupFd(fd: number): number;
  acceptAndClose(fd: number): number[];
}

/** The addon's ListenerDrain; null without the addon or with one built before it. */
export function listenerDrain(): ListenerDrain | null {
  const { addon } = loadUdpAddon();
  const a = addon as (UdpAddon & Partial<ListenerDrain>) | null;
  if (a === null || typeof a.dupFd !== 'function' || typeof a.acceptAndClose !== 'function') return null;
  return a as UdpAddon & ListenerDrain;
}

/** `family|address|port` of a listening SO_REUSEPORT TCP socket; '' for anything else or without the helper. */
export function tcpListenerName(addon: UdpAddon, fd: number): string {
  const name = (addon as UdpAddon & TcpNaming).tcpListenerName;
  return typeof name === 'function' ? name(fd) : '';
}

const tracked = new Set<Tracked>();
const trackedTcp = new Set<TcpListener>();
const adoptedTcp: AdoptedTcp[] = [];
const adopted: Adopted[] = [];
/** Owners whose adoption is running in this thread (dgram's adopt is asynchronous). */
const adopting = new Set<string>();
/** Fruitless attempts per owner (bounded: an owner's entry goes with its release). */
const attempts = new Map<string, number>();
let channel: BroadcastChannel | null = null;

/** Registers a listener of this thread (see the module comment); returns it. */
export function trackListener<T extends UdpListener>(listener: T, sibling: () => UdpListener): T {
  for (const t of tracked) if (t.listener.closed) tracked.delete(t);
  tracked.add({ listener, sibling });
  const close = listener.close.bind(listener);
  // Synchronous, as close() itself (it may be called inside a batch, which then stops reading).
  listener.close = () => {
    for (const a of adopted) if (a.parent === listener) void release(a, false);
    return close();
  };
  return listener;
}

/** Registers a listening TCP listener of this thread (TcpListener.listen); forgotten once closed. */
export function trackTcpListener(listener: TcpListener): void {
  for (const l of trackedTcp) if (l.draining) trackedTcp.delete(l);
  trackedTcp.add(listener);
}

/** Forgets TCP adoptions whose acceptor its listener closed (a reload or stop closed the listener). */
function pruneTcp(): void {
  for (let i = adoptedTcp.length - 1; i >= 0; i--) if (adoptedTcp[i]!.acceptor.closed && adoptedTcp[i]!.releasing === null) adoptedTcp.splice(i, 1);
}

/** This thread's adopted sockets (tests, logs): `received` counts datagrams read (UDP) or connections accepted (TCP). */
export function adoptedListeners(): { owner: string; proto: 'udp' | 'tcp'; address: string; port: number; received: number }[] {
  pruneTcp();
  return [
    ...adopted.map((a) => ({ owner: a.owner, proto: 'udp' as const, address: a.listener.address, port: a.parent.port, received: a.listener.received })),
    ...adoptedTcp.map((a) => ({
      owner: a.owner,
      proto: 'tcp' as const,
      address: a.acceptor.listener.address,
      port: a.acceptor.listener.port,
      received: a.acceptor.accepted,
    })),
  ];
}

/**
 * Starts listening for the standby's adopt/release messages in this thread: called by the
 * standby's SocketAdoption (main thread) and by every serving worker. Not at load: node:worker_threads
 * costs ~2 MiB of RSS, and a process that is no standby never adopts (test/footprint).
 */
export function listenForAdoption(): void {
  if (channel !== null) return;
  const { BroadcastChannel } = process.getBuiltinModule('node:worker_threads');
  channel = new BroadcastChannel(ADOPT_CHANNEL);
  channel.unref();
  channel.onmessage = (ev) => {
    onMessage((ev as MessageEvent).data as AdoptMessage).catch((err: Error) => log.error(`socket adoption: ${err.message}`));
  };
}

async function onMessage(m: AdoptMessage): Promise<void> {
  if (m.type === 'adopt') await adopt(m.owner, m.path);
  else if (m.type === 'release') await releaseOwner(m.owner, m.handOver);
}

/** Asks `path` for its listening sockets and serves those matching our listeners. */
export async function adopt(owner: string, path: string): Promise<number> {
  pruneTcp();
  if (
    adopting.has(owner) ||
    adopted.some((a) => a.owner === owner) ||
    adoptedTcp.some((a) => a.owner === owner) ||
    (attempts.get(owner) ?? 0) >= MAX_ATTEMPTS
  ) {
    return 0;
  }
  const { addon } = loadUdpAddon();
  if (addon === null || typeof addon.recvFds !== 'function') return 0;
  adopting.add(owner);
  let n = 0;
  try {
    let fds: number[];
    try {
      fds = addon.recvFds(path, 'fds\n', ADOPT_TIMEOUT_MS).fds;
    } catch (err) {
      log.warn(`Cannot adopt the listening sockets of ${path}: ${(err as Error).message}`);
      return 0;
    }
    for (const fd of fds) {
      const udpName = addon.udpListenerName(fd);
      if (udpName === '') {
        if (await adoptTcp(owner, path, addon, fd)) n++;
        continue;
      }
      const parent = matchListener(udpName);
      if (parent === undefined) {
        closeSync(fd);
        continue;
      }
      const listener = parent.sibling();
      try {
        await listener.adopt(fd);
      } catch (err) {
        log.warn(`Cannot serve an adopted socket of ${path} on ${parent.listener.address}:${parent.listener.port}: ${(err as Error).message}`);
        continue;
      }
      if (parent.listener.closed) {
        await listener.close();
        continue;
      }
      replyThroughParentOnceClosed(listener, parent.listener);
      adopted.push({ owner, parent: parent.listener, listener, releasing: null });
      n++;
    }
    return n;
  } finally {
    adopting.delete(owner);
    if (n === 0) attempts.set(owner, (attempts.get(owner) ?? 0) + 1);
  }
}

/** Accepts from `fd` on our TCP listener of its address and port; false (fd closed) when it is none of ours. */
async function adoptTcp(owner: string, path: string, addon: UdpAddon, fd: number): Promise<boolean> {
  const parent = matchTcpListener(tcpListenerName(addon, fd));
  if (parent === undefined) {
    closeSync(fd);
    return false;
  }
  let acceptor: TcpAcceptor;
  try {
    acceptor = await parent.acceptFrom(fd);
  } catch (err) {
    log.warn(`Cannot serve an adopted TCP socket of ${path} on ${parent.address}:${parent.port}: ${(err as Error).message}`);
    return false;
  }
  if (acceptor.closed) return false;
  adoptedTcp.push({ owner, acceptor, releasing: null });
  return true;
}

/**
 * A query read from an adopted socket may still be resolving (a cache miss) when that socket is
 * closed (the standby stops while the owner lives): its answer then goes out through our own
 * listener of the same address and port (same source address, same I/O path) instead of being
 * dropped. Only when both are closed is it dropped, as on any closed listener.
 */
function replyThroughParentOnceClosed(listener: UdpListener, parent: UdpListener): void {
  const write = listener.writeMsg.bind(listener);
  listener.writeMsg = (req, msg, len) => (listener.closed && !parent.closed ? parent.writeMsg(req, msg, len) : write(req, msg, len));
}

/** Our live UDP listener for `family|address|port` (udpListenerName). */
function matchListener(name: string): Tracked | undefined {
  for (const t of tracked) if (!t.listener.closed && sameName(t.listener, name)) return t;
  return undefined;
}

/** Our listening TCP listener for `family|address|port` (tcpListenerName). */
function matchTcpListener(name: string): TcpListener | undefined {
  for (const l of trackedTcp) if (!l.draining && sameName(l, name)) return l;
  return undefined;
}

/** Whether a listener is bound to `family|address|port`; a wildcard matches a wildcard. */
function sameName(l: { address: string; port: number }, name: string): boolean {
  const [family, address, port] = name.split('|');
  if (family === undefined || address === undefined || port === undefined) return false;
  if (String(l.port) !== port || (l.address.includes(':') ? '6' : '4') !== family) return false;
  const wildcard = (a: string) => a === '' || a === '0.0.0.0' || a === '::';
  return l.address === address || (wildcard(l.address) && wildcard(address));
}

function release(a: Adopted, handOver: boolean): Promise<void> {
  a.releasing ??= (handOver ? a.listener.handOver(performance.now() + RELEASE_DRAIN_MS) : a.listener.close()).finally(() => {
    const i = adopted.indexOf(a);
    if (i >= 0) adopted.splice(i, 1);
  });
  return a.releasing;
}

function releaseTcp(a: AdoptedTcp, handOver: boolean): Promise<void> {
  a.releasing ??= a.acceptor.close(handOver).finally(() => {
    const i = adoptedTcp.indexOf(a);
    if (i >= 0) adoptedTcp.splice(i, 1);
  });
  return a.releasing;
}

/** Releases everything adopted from `owner` in this thread (see AdoptMessage 'release'). */
export function releaseOwner(owner: string, handOver: boolean): Promise<void> {
  attempts.delete(owner);
  return Promise.all([
    ...adopted.filter((a) => a.owner === owner).map((a) => release(a, handOver)),
    ...adoptedTcp.filter((a) => a.owner === owner).map((a) => releaseTcp(a, handOver)),
  ]).then(() => undefined);
}
