/**
 * `-pidfile`: the process id written once the process serves, in every mode (agent, `-conf`
 * only), and removed on a clean exit. Opened with O_NONBLOCK: a FIFO at that path (nobody
 * reading) fails with ENXIO instead of blocking start-up forever; a regular file is written as usual.
 * A failure is logged, never fatal (as CoreDNS, which logs and serves on).
 */
import { constants as fsConstants } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';

export async function writePidfile(path: string, log: { error(msg: string): void }): Promise<void> {
  if (path === '') return;
  try {
    await writeFile(path, `${process.pid}\n`, { flag: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NONBLOCK });
  } catch (err) {
    log.error(`Failed to write pidfile ${path}: ${(err as Error).message}`);
  }
}

export async function removePidfile(path: string): Promise<void> {
  if (path === '') return;
  await rm(path, { force: true }).catch(() => undefined);
}
