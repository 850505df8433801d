/**
 * Loopback plumbing shared by the end-to-end tests: free 127.0.0.x addresses and ports,
 * sleeping and polling. Everything stays on 127.0.0.0/8.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 20 ms until it holds; throws after `ms`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** True when `port` on `host` can be bound for both UDP and TCP right now. */
export async function portFree(host: string, port: number): Promise<boolean> {
  const udp = await new Promise<boolean>((res) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => res(false));
    s.bind(port, host, () => s.close(() => res(true)));
  });
  if (!udp) return false;
  return new Promise<boolean>((res) => {
    const srv = net.createServer();
    srv.once('error', () => res(false));
    srv.listen(port, host, () => srv.close(() => res(true)));
  });
}

/** A random 127.0.0.x host (x in 20..249), or `host`, and a port free there for UDP and TCP. */
export async function freeAddress(host?: string): Promise<{ host: string; port: number }> {
  for (let i = 0; i < 100; i++) {
    const h = host ?? `127.0.0.${20 + Math.floor(Math.random() * 230)}`;
    const port = 20000 + Math.floor(Math.random() * 40000);
    if (await portFree(h, port)) return { host: h, port };
  }
  throw new Error('no free loopback address found');
}

/**
 * True when a UDP query for `name` (type A) sent to host:port gets any reply within
 * `timeoutMs`: the readiness probe of the tests' upstream servers.
 */
export function answersUdp(host: string, port: number, name: string, timeoutMs = 200): Promise<boolean> {
  const labels = name.split('.').filter(Boolean);
  const parts = [Buffer.from([0x10, 0xe1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l));
  parts.push(Buffer.from([0, 0, 1, 0, 1]));
  const query = Buffer.concat(parts);
  return new Promise((res) => {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => done(false), timeoutMs);
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.close();
      res(ok);
    };
    s.on('error', () => done(false));
    s.on('message', () => done(true));
    s.send(query, port, host);
  });
}
