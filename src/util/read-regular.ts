/**
 * Reading a file someone else writes (a mounted ConfigMap, the Corefile template) without ever
 * blocking on it or reading without bound: the file is opened with O_NONBLOCK (so a FIFO opens
 * at once instead of waiting for a writer, holding a libuv thread and everything queued behind
 * it forever), fstat'ed and refused unless it is a regular file of at most `maxBytes`; reading
 * stops past `maxBytes` even when the file grows meanwhile. src/corefile/read.ts reads the
 * Corefile and its imports through it, with the configuration's own error texts.
 *
 * Errors: ReadRegularError `ERR_READ_REGULAR`, naming the file and the reason, never its
 * contents; `cause.code` keeps the errno (ENOENT ...) when there was one.
 *
 * Callback `fs`, not `node:fs/promises`: that module (and the readline code it loads) would be
 * loaded by every process for this one reader (bench/PROFILE.md, Footprint).
 */
import fs from 'node:fs';

export const ReadFailure = { NOT_REGULAR: 'not-regular', TOO_LARGE: 'too-large', IO: 'io' } as const;
export type ReadFailure = (typeof ReadFailure)[keyof typeof ReadFailure];

export class ReadRegularError extends Error {
  readonly code = 'ERR_READ_REGULAR' as const;
  readonly file: string;
  readonly failure: ReadFailure;
  /** errno code of the failed call (ENOENT, EACCES ...), when a call failed. */
  readonly errno: string | undefined;
  /** The reason without the file name (`is a FIFO, not a regular file`). */
  readonly reason: string;
  /** Node's message of the failed call (`ENOENT: no such file or directory, open '...'`), when a call failed. */
  readonly sysMessage: string | undefined;
  constructor(file: string, failure: ReadFailure, reason: string, errno?: string, sysMessage?: string) {
    super(`${file}: ${reason}`);
    this.name = 'ReadRegularError';
    this.file = file;
    this.failure = failure;
    this.reason = reason;
    this.errno = errno;
    this.sysMessage = sysMessage;
  }
}

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;
const READ_CHUNK_BYTES = 64 * 1024;

function kind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/** fs.open as a promise. */
function openFile(file: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, (err, fd) => (err === null ? resolve(fd) : reject(err))));
}

/** fs.fstat as a promise. */
function fstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err === null ? resolve(st) : reject(err))));
}

/** fs.read at the current position as a promise: the bytes read. */
function readInto(fd: number, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, null, (err, n) => (err === null ? resolve(n) : reject(err))));
}

/** fs.close; a failure is ignored (the descriptor is released either way on Linux). */
function closeFile(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

/** The bytes of regular file `file`, at most `maxBytes` of them (else ReadRegularError). */
export async function readRegularFile(file: string, maxBytes: number): Promise<Buffer> {
  let fd: number;
  try {
    fd = await openFile(file, OPEN_FLAGS);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // ENXIO: a unix socket; the rest keep their code.
    if (e.code === 'ENXIO') throw new ReadRegularError(file, ReadFailure.NOT_REGULAR, 'is a socket or device without a reader, not a regular file', e.code);
    throw new ReadRegularError(file, ReadFailure.IO, `cannot be read: ${e.code ?? e.message}`, e.code, e.message);
  }
  try {
    const st = await fstat(fd);
    if (!st.isFile()) throw new ReadRegularError(file, ReadFailure.NOT_REGULAR, `is ${kind(st)}, not a regular file`);
    if (st.size > maxBytes) throw new ReadRegularError(file, ReadFailure.TOO_LARGE, `is larger than ${maxBytes} bytes`);
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, maxBytes - total + 1));
      const bytesRead = await readInto(fd, buf);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw new ReadRegularError(file, ReadFailure.TOO_LARGE, `is larger than ${maxBytes} bytes`);
      parts.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
    }
    return Buffer.concat(parts, total);
  } catch (err) {
    if (err instanceof ReadRegularError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new ReadRegularError(file, ReadFailure.IO, `cannot be read: ${e.code ?? e.message}`, e.code, e.message);
  } finally {
    await closeFile(fd);
  }
}
