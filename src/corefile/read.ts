/**
 * Reading the Corefile and its imports without ever blocking on the file: the file is opened
 * with O_NONBLOCK (opening a FIFO for reading then returns at once instead of waiting for a
 * writer), fstat'ed, and refused unless it is a regular file no larger than the bytes left in
 * the load's budget; only then is it read, and reading stops at the budget even if the file
 * grew meanwhile. `readConfigFile` is asynchronous (callback fs: the serving thread goes on answering while
 * the bytes arrive); `readConfigFileSync` is the same for callers that parse synchronously.
 *
 * Failures throw ConfigReadError, whose message names the file and the reason, never its
 * contents.
 */
import fs from 'node:fs';
import { Buffer } from 'node:buffer';
import { ReadFailure, ReadRegularError, readRegularFile } from '../util/read-regular.ts';

const ConfigReadErrorCode = 'ERR_CONFIG_READ' as const;

export class ConfigReadError extends Error {
  readonly code = ConfigReadErrorCode;
  readonly file: string;
  /** The reason without the file name (e.g. `is a FIFO, not a regular file`). */
  readonly reason: string;
  /** The system error code when the file could not be opened or read (`ENOENT`), else null. */
  readonly sysCode: string | null;

  constructor(file: string, reason: string, sysCode: string | null = null) {
    super(`${file}: ${reason}`);
    this.name = 'ConfigReadError';
    this.file = file;
    this.reason = reason;
    this.sysCode = sysCode;
  }
}

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;
const READ_CHUNK_BYTES = 64 * 1024;

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function checkStat(file: string, st: fs.Stats, maxBytes: number, whole: boolean): void {
  if (!st.isFile()) throw new ConfigReadError(file, `is ${kindOf(st)}, not a regular file`);
  if (st.size > maxBytes) throw tooLarge(file, maxBytes, whole);
}

/** `whole`: maxBytes is the whole limit (the Corefile), not what imports left of it. */
export function tooLarge(file: string, maxBytes: number, whole: boolean): ConfigReadError {
  return new ConfigReadError(
    file,
    whole ? `larger than the configuration size limit of ${maxBytes} bytes` : `larger than the ${maxBytes} bytes left of the configuration size limit`,
  );
}

function openError(file: string, err: unknown): ConfigReadError {
  const e = err as NodeJS.ErrnoException;
  // ENXIO: a unix socket (or a FIFO opened for writing); ELOOP etc. come with their code.
  const reason = e.code === 'ENXIO' ? 'is a socket or device without a reader, not a regular file' : e.message;
  return new ConfigReadError(file, reason, e.code ?? null);
}

/**
 * Reads a regular file of at most maxBytes as UTF-8 without blocking the event loop
 * (src/util/read-regular.ts). `whole`: maxBytes is the whole configuration limit (the
 * Corefile; the default) rather than what is left of it (an import); only the error's wording
 * differs.
 */
export async function readConfigFile(file: string, maxBytes: number, whole = true): Promise<string> {
  try {
    return (await readRegularFile(file, maxBytes)).toString('utf8');
  } catch (err) {
    if (!(err instanceof ReadRegularError)) throw openError(file, err);
    if (err.failure === ReadFailure.TOO_LARGE) throw tooLarge(file, maxBytes, whole);
    if (err.failure === ReadFailure.NOT_REGULAR) throw new ConfigReadError(file, err.reason, err.errno ?? null);
    throw new ConfigReadError(file, err.sysMessage ?? err.reason, err.errno ?? null);
  }
}

/** readConfigFile for synchronous callers: same checks, same errors. */
export function readConfigFileSync(file: string, maxBytes: number, whole = true): string {
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
  } catch (err) {
    throw openError(file, err);
  }
  try {
    checkStat(file, fs.fstatSync(fd), maxBytes, whole);
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, maxBytes - total + 1));
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw tooLarge(file, maxBytes, whole);
      parts.push(n === buf.length ? buf : buf.subarray(0, n));
    }
    return Buffer.concat(parts, total).toString('utf8');
  } catch (err) {
    if (err instanceof ConfigReadError) throw err;
    throw openError(file, err);
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // nothing to do: the descriptor is gone either way
    }
  }
}
