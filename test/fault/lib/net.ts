/**
 * Loopback plumbing for the resilience tests (fault, soak): free 127.0.0.x addresses and
 * ports, sleeping and polling. Everything stays on 127.0.0.0/8.
 */
export { sleep, waitUntil, freeAddress, answersUdp } from '../../lib/net.ts';

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
