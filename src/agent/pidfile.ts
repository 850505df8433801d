/**
 * `-pidfile`: the process id written once the process serves, in every mode (agent, `-conf`
 * only), and removed on a clean exit. Opened with O_NONBLOCK: a FIFO at that path (nobody
 * reading) fails with ENXIO instead of blocking start-up forever; a regular file is written as usual.
 * A failure is logged, never fatal (as CoreDNS, which logs and serves on). Callback `fs`, not
 * `node:fs/promises` (not loaded at start-up: bench/PROFILE.md, Footprint).
 */
import fs from 'node:fs';

const PIDFILE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NONBLOCK;

/** Writes `path`; never rejects (a failure is logged). */
export function writePidfile(path: string, log: { error(msg: string): void }): Promise<void> {
  if (path === '') return Promise.resolve();
  return new Promise((resolve) => {
    const done = (err: Error | null): void => {
      if (err !== null) log.error(`Failed to write pidfile ${path}: ${err.message}`);
      resolve();
    };
    fs.open(path, PIDFILE_FLAGS, 0o666, (err, fd) => {
      if (err !== null) {
        done(err);
        return;
      }
      fs.writeFile(fd, `${process.pid}\n`, (err2) => fs.close(fd, (err3) => done(err2 ?? err3)));
    });
  });
}

/** Removes `path` if it exists; never rejects. */
export function removePidfile(path: string): Promise<void> {
  if (path === '') return Promise.resolve();
  return new Promise((resolve) => fs.rm(path, { force: true }, () => resolve()));
}
