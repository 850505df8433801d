/**
 * Loopback plumbing for the resilience tests (fault, soak): free 127.0.0.x addresses and
 * ports, sleeping and polling. Everything stays on 127.0.0.0/8.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 25 ms until it holds; throws after `ms`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

async function portFree(host: string, port: number): Promise<boolean> {
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

/** Resident set size of a process in KiB (VmRSS of /proc/PID/status); 0 when gone. */
export function rssKiB(pid: number): Promise<number> {
  return import('node:fs/promises').then(async (fs) => {
    try {
      const text = await fs.readFile(`/proc/${pid}/status`, 'utf8');
      const m = /^VmRSS:\s+(\d+) kB/m.exec(text);
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  });
}
