/**
 * Errors of the forward plugin. `code` is stable (tests and the `errors` plugin may match on
 * it); `message` mimics what CoreDNS's forward logs through the errors plugin, which prints
 * Go's net errors, e.g. `read udp 10.0.0.5:41234->10.96.0.10:53: i/o timeout`.
 */

export const ForwardErrorCode = {
  /** No reply within the per-try read timeout (CoreDNS: 2 s). */
  TIMEOUT: 'ERR_FORWARD_TIMEOUT',
  /** A socket error: connection refused (ICMP port unreachable on UDP), reset, unreachable... */
  NETWORK: 'ERR_FORWARD_NETWORK',
  /** TCP connect did not complete in time. */
  DIAL_TIMEOUT: 'ERR_FORWARD_DIAL_TIMEOUT',
  /** A reused TCP connection was closed by the upstream (CoreDNS's ErrCachedClosed). */
  CACHED_CLOSED: 'ERR_FORWARD_CACHED_CLOSED',
  /** The upstream broke RFC 1035 §4.2.2 framing (length 0 or shorter than a header). */
  BAD_FRAME: 'ERR_FORWARD_BAD_FRAME',
  /** Every one of the 65536 message IDs is in flight on the chosen socket/connection. */
  ID_EXHAUSTED: 'ERR_FORWARD_ID_EXHAUSTED',
  /** All upstreams are down and none could be tried (CoreDNS's ErrNoHealthy). */
  NO_HEALTHY: 'ERR_FORWARD_NO_HEALTHY',
  /** `max_concurrent` reached: the query is answered REFUSED. */
  LIMIT_EXCEEDED: 'ERR_FORWARD_LIMIT_EXCEEDED',
  /** The plugin was stopped while the query was in flight. */
  STOPPED: 'ERR_FORWARD_STOPPED',
} as const;
export type ForwardErrorCodeValue = (typeof ForwardErrorCode)[keyof typeof ForwardErrorCode];

export class ForwardError extends Error {
  readonly code: ForwardErrorCodeValue;
  /** Upstream `IP:port` the error is about, or '' when it concerns no single upstream. */
  readonly upstream: string;
  /** LIMIT_EXCEEDED: the limit in force; 0 otherwise. */
  readonly limit: number;
  constructor(code: ForwardErrorCodeValue, message: string, upstream = '', limit = 0) {
    super(message);
    this.name = 'ForwardError';
    this.code = code;
    this.upstream = upstream;
    this.limit = limit;
  }
}

/** Go's text for the errno names Node reports (syscall.Errno.Error()). */
const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by peer',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network is unreachable',
  EPIPE: 'broken pipe',
  ETIMEDOUT: 'connection timed out',
  EADDRNOTAVAIL: 'cannot assign requested address',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EMSGSIZE: 'message too long',
  ENOBUFS: 'no buffer space available',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in system',
  EINVAL: 'invalid argument',
  EAFNOSUPPORT: 'address family not supported by protocol',
  ENETDOWN: 'network is down',
  EHOSTDOWN: 'host is down',
  ENOMEM: 'cannot allocate memory',
  EIO: 'input/output error',
};

/** Errnos a Go dial reports from socket(2) rather than connect(2) (`dial udp ...: socket: ...`). */
const SOCKET_ERRNOS = new Set(['EMFILE', 'ENFILE', 'EAFNOSUPPORT', 'EPROTONOSUPPORT', 'ENOBUFS', 'ENOMEM']);

/** The system call Go names in a dial error for `code`: `socket` or `connect`. */
export function dialSyscall(code: string): string {
  return SOCKET_ERRNOS.has(code) ? 'socket' : 'connect';
}

export function errnoText(code: string | undefined): string {
  if (code === undefined) return 'unknown error';
  return ERRNO_TEXT[code] ?? code.toLowerCase();
}
