/** A raw TCP client for the timeouts tests: connects, optionally asks, reports when the server closed. */
import net from 'node:net';
import { rawQuery } from '../../engine/harness.ts';

export interface TimedConnection {
  /** ms from connect to the server's close, -1 while open. */
  closedAfterMs(): number;
  /** Sends one framed query and resolves with the reply length (0 when none came in 5 s). */
  ask(name: string, qtype: number): Promise<number>;
  destroy(): void;
}

export async function connectTimed(host: string, port: number): Promise<TimedConnection> {
  const sock = net.connect({ host, port });
  let closedAt = -1;
  let t0 = 0;
  let buf = Buffer.alloc(0);
  let waiter: (() => void) | null = null;
  sock.on('error', () => {});
  sock.on('close', () => {
    closedAt = performance.now() - t0;
    waiter?.();
  });
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    waiter?.();
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  t0 = performance.now();
  return {
    closedAfterMs: () => closedAt,
    async ask(name, qtype) {
      const q = rawQuery(name, qtype, 0x2222);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      sock.write(Buffer.concat([len, q]));
      const end = performance.now() + 5000;
      while (!(buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) && performance.now() < end && closedAt < 0) {
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 50);
        });
      }
      const n = buf.length >= 2 ? buf.readUInt16BE(0) : 0;
      buf = Buffer.alloc(0);
      return n;
    },
    destroy: () => sock.destroy(),
  };
}

export async function waitClosed(c: TimedConnection, ms: number): Promise<number> {
  const end = performance.now() + ms;
  while (c.closedAfterMs() < 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
  return c.closedAfterMs();
}
