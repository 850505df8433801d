/*
 * Passing listening UDP and TCP sockets between node-local-dns instances (SCM_RIGHTS), Linux only.
 * Part of the udp addon (binding.gyp target "udp"); udp.c's init calls fdpass_init.
 *
 *   sendFds(unixFd, fds, text)      one sendmsg on a connected unix stream socket (the peer
 *                                   server's accepted connection, non-blocking, owned by libuv):
 *                                   `text` (1..255 bytes) with the fds (1..FDPASS_MAX_FDS) as
 *                                   SCM_RIGHTS. Returns the bytes sent; throws on any error or a
 *                                   partial send. Never blocks (MSG_DONTWAIT).
 *   recvFds(path, request, timeoutMs) -> { fds, text }
 *                                   connects to a peer socket, writes `request`, reads one
 *                                   answer with its SCM_RIGHTS fds (close-on-exec). Blocking,
 *                                   bounded: SO_SNDTIMEO/SO_RCVTIMEO of timeoutMs (1..5000) on
 *                                   connect, write and the one recvmsg. A truncated control
 *                                   message (MSG_CTRUNC) closes what arrived and throws.
 *   udpListenerName(fd) -> "4|127.0.0.1|53" or ""
 *                                   the fd's family, address and port when it is a bound,
 *                                   unconnected AF_INET/AF_INET6 datagram socket with
 *                                   SO_REUSEPORT (a DNS listener); "" for anything else.
 *   tcpListenerName(fd) -> "6|::1|53" or ""
 *                                   the same for a listening (SO_ACCEPTCONN) AF_INET/AF_INET6
 *                                   stream socket with SO_REUSEPORT bound to a port.
 *   dupFd(fd) -> fd                 a close-on-exec duplicate of a socket descriptor.
 *   acceptAndClose(fd) -> fds       accepts what is queued on a listening TCP socket until
 *                                   EAGAIN, then closes fd, in one call (releasing a dead
 *                                   peer's listening socket while losing the least).
 *
 * No global state; nothing is kept between calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <node_api.h>

/* 128: a UDP and a TCP listener per serving thread and address (src/agent/standby.ts MAX_PASSED_FDS). */
#define FDPASS_MAX_FDS 128
#define FDPASS_MAX_TEXT 256
#define FDPASS_MAX_REQUEST 64
#define FDPASS_MAX_TIMEOUT_MS 5000
/* acceptAndClose: a listener's queue holds at most its backlog + 1 (1024 here) connections. */
#define FDPASS_MAX_ACCEPT 4096

typedef union {
  char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX_FDS)];
  struct cmsghdr align;
} fd_control;

/* native/udp.c's error helpers (the same Error shapes for both files' calls). */
napi_value throw_errno(napi_env env, const char *what, int err);
napi_value throw_type(napi_env env, const char *msg);

static int sock_opt(int fd, int opt, int *out) {
  socklen_t len = sizeof *out;
  return getsockopt(fd, SOL_SOCKET, opt, out, &len) == 0 && len == sizeof *out;
}

/* sendFds(unixFd: number, fds: number[], text: string): number */
static napi_value js_send_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return throw_type(env, "unixFd, fds, text");
  int32_t unix_fd;
  if (napi_get_value_int32(env, argv[0], &unix_fd) != napi_ok || unix_fd < 0) return throw_type(env, "unixFd must be a descriptor");
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &count) != napi_ok) {
    return throw_type(env, "fds must be an array");
  }
  if (count < 1 || count > FDPASS_MAX_FDS) return throw_type(env, "fds: 1 to 128 descriptors");
  int fds[FDPASS_MAX_FDS];
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    int32_t fd;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_int32(env, v, &fd) != napi_ok || fd < 0) {
      return throw_type(env, "fds must be descriptors");
    }
    fds[i] = fd;
  }
  char text[FDPASS_MAX_TEXT];
  size_t text_len = 0;
  if (napi_get_value_string_utf8(env, argv[2], text, sizeof text, &text_len) != napi_ok || text_len < 1 || text_len >= sizeof text - 1) {
    return throw_type(env, "text: 1 to 254 bytes");
  }
  /* Only ever onto a unix stream socket: never hand our sockets to anything else. */
  int domain = 0, type = 0;
  if (!sock_opt(unix_fd, SO_DOMAIN, &domain) || !sock_opt(unix_fd, SO_TYPE, &type)) return throw_errno(env, "getsockopt", errno);
  if (domain != AF_UNIX || type != SOCK_STREAM) return throw_errno(env, "sendFds", ENOTSOCK);

  fd_control ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = text, .iov_len = text_len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * count);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
  ssize_t r;
  do r = sendmsg(unix_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, "sendmsg", errno);
  /* The fds travel with the first byte; a short write would leave the answer cut. */
  if ((size_t)r != text_len) return throw_errno(env, "sendmsg", EAGAIN);
  napi_value out;
  napi_create_int32(env, (int32_t)r, &out);
  return out;
}

static void close_all(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

/* recvFds(path: string, request: string, timeoutMs: number): { fds: number[], text: string } */
static napi_value js_recv_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return throw_type(env, "path, request, timeoutMs");
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t path_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], sa.sun_path, sizeof sa.sun_path, &path_len) != napi_ok || path_len < 1 ||
      path_len >= sizeof sa.sun_path - 1) {
    return throw_type(env, "path: 1 to 106 bytes");
  }
  char request[FDPASS_MAX_REQUEST];
  size_t request_len = 0;
  if (napi_get_value_string_utf8(env, argv[1], request, sizeof request, &request_len) != napi_ok || request_len < 1 ||
      request_len >= sizeof request - 1) {
    return throw_type(env, "request: 1 to 62 bytes");
  }
  int32_t timeout_ms;
  if (napi_get_value_int32(env, argv[2], &timeout_ms) != napi_ok || timeout_ms < 1 || timeout_ms > FDPASS_MAX_TIMEOUT_MS) {
    return throw_type(env, "timeoutMs: 1 to 5000");
  }

  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_errno(env, "socket", errno);
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 || setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    int e = errno;
    close(s);
    return throw_errno(env, "setsockopt", e);
  }
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(s);
    return throw_errno(env, "connect", e);
  }
  ssize_t w;
  do w = send(s, request, request_len, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0 || (size_t)w != request_len) {
    int e = w < 0 ? errno : EAGAIN;
    close(s);
    return throw_errno(env, "send", e);
  }

  char text[FDPASS_MAX_TEXT];
  fd_control ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = text, .iov_len = sizeof text - 1};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = sizeof ctl.buf;
  ssize_t r;
  do r = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  int recv_errno = errno;
  close(s);

  /* Collect every SCM_RIGHTS descriptor that arrived, even on an error, so none leaks. */
  int fds[FDPASS_MAX_FDS];
  size_t n = 0;
  int bad_control = 0;
  if (r >= 0) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) {
        bad_control = 1;
        continue;
      }
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char *data = CMSG_DATA(c);
      for (size_t i = 0; i < k; i++) {
        int fd;
        memcpy(&fd, data + i * sizeof(int), sizeof fd);
        if (n < FDPASS_MAX_FDS) fds[n++] = fd;
        else close(fd); /* cannot happen with a buffer of this size; closed rather than leaked */
      }
    }
  }
  if (r < 0) return throw_errno(env, "recvmsg", recv_errno == EAGAIN ? ETIMEDOUT : recv_errno);
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || bad_control) {
    close_all(fds, n);
    return throw_errno(env, "recvmsg", EMSGSIZE);
  }

  napi_value out, arr, str;
  if (napi_create_object(env, &out) != napi_ok || napi_create_array_with_length(env, n, &arr) != napi_ok ||
      napi_create_string_utf8(env, text, (size_t)r, &str) != napi_ok) {
    close_all(fds, n);
    return throw_errno(env, "recvFds", ENOMEM);
  }
  for (size_t i = 0; i < n; i++) {
    napi_value v;
    napi_create_int32(env, fds[i], &v);
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  napi_set_named_property(env, out, "fds", arr);
  napi_set_named_property(env, out, "text", str);
  return out;
}

/*
 * "4|127.0.0.1|53" for a DNS listener of `type`, else "": an AF_INET/AF_INET6 socket with
 * SO_REUSEPORT bound to a port; a SOCK_DGRAM one must be unconnected (a connected socket is a
 * forwarder's, or a listener handing over), a SOCK_STREAM one must be listening (SO_ACCEPTCONN).
 */
static void listener_name(int fd, int want_type, char *out, size_t out_size) {
  out[0] = '\0';
  int type = 0, domain = 0, reuse = 0, listening = 0;
  if (fd < 0 || !sock_opt(fd, SO_TYPE, &type) || type != want_type || !sock_opt(fd, SO_DOMAIN, &domain) ||
      (domain != AF_INET && domain != AF_INET6) || !sock_opt(fd, SO_REUSEPORT, &reuse) || reuse == 0) {
    return;
  }
  if (want_type == SOCK_STREAM && (!sock_opt(fd, SO_ACCEPTCONN, &listening) || listening == 0)) return;
  struct sockaddr_in6 sa;
  socklen_t len = sizeof sa;
  memset(&sa, 0, sizeof sa);
  if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) return;
  if (want_type == SOCK_DGRAM) {
    struct sockaddr_in6 peer;
    socklen_t peer_len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) == 0 || errno != ENOTCONN) return;
  }
  char ip[INET6_ADDRSTRLEN];
  if (domain == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in *a = (struct sockaddr_in *)&sa;
    if (a->sin_port != 0 && inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip) != NULL) {
      snprintf(out, out_size, "4|%s|%u", ip, (unsigned)ntohs(a->sin_port));
    }
  } else if (domain == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    if (sa.sin6_port != 0 && inet_ntop(AF_INET6, &sa.sin6_addr, ip, sizeof ip) != NULL) {
      snprintf(out, out_size, "6|%s|%u", ip, (unsigned)ntohs(sa.sin6_port));
    }
  }
}

static napi_value listener_name_of(napi_env env, napi_callback_info info, int want_type) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return throw_type(env, "fd");
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) return throw_type(env, "fd must be a number");
  char out[INET6_ADDRSTRLEN + 16];
  listener_name(fd, want_type, out, sizeof out);
  napi_value r;
  napi_create_string_utf8(env, out, NAPI_AUTO_LENGTH, &r);
  return r;
}

/* udpListenerName(fd: number): string */
static napi_value js_udp_listener_name(napi_env env, napi_callback_info info) {
  return listener_name_of(env, info, SOCK_DGRAM);
}

/* tcpListenerName(fd: number): string */
static napi_value js_tcp_listener_name(napi_env env, napi_callback_info info) {
  return listener_name_of(env, info, SOCK_STREAM);
}

/* dupFd(fd: number): number -- a close-on-exec duplicate (>= 3) of a socket descriptor. */
static napi_value js_dup_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return throw_type(env, "fd");
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type(env, "fd must be a descriptor");
  int type = 0;
  if (!sock_opt(fd, SO_TYPE, &type)) return throw_errno(env, "getsockopt", errno);
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return throw_errno(env, "fcntl", errno);
  napi_value out;
  napi_create_int32(env, d, &out);
  return out;
}

/*
 * acceptAndClose(fd: number): number[] -- accepts every connection queued on the listening TCP
 * socket `fd` (non-blocking, close-on-exec, at most FDPASS_MAX_ACCEPT) until EAGAIN, then closes
 * `fd`, in one call: only a handshake completing in between the last accept and the close is
 * left in the queue (reset by the kernel if `fd` was the socket's last descriptor). `fd` is
 * closed whatever happens; a connection aborted meanwhile (ECONNABORTED) is skipped; any other
 * accept error (EMFILE, ENFILE, ENOBUFS) stops accepting. Throws (fd left open) only when `fd`
 * is not a listening stream socket.
 */
static napi_value js_accept_and_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return throw_type(env, "fd");
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type(env, "fd must be a descriptor");
  int type = 0, listening = 0;
  if (!sock_opt(fd, SO_TYPE, &type) || type != SOCK_STREAM || !sock_opt(fd, SO_ACCEPTCONN, &listening) || listening == 0) {
    return throw_errno(env, "acceptAndClose", EINVAL);
  }
  int *accepted = malloc(sizeof(int) * FDPASS_MAX_ACCEPT);
  if (accepted == NULL) {
    close(fd);
    return throw_errno(env, "acceptAndClose", ENOMEM);
  }
  size_t n = 0;
  while (n < FDPASS_MAX_ACCEPT) {
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) accepted[n++] = c;
    else if (errno != EINTR && errno != ECONNABORTED) break;
  }
  close(fd);
  napi_value arr;
  if (napi_create_array_with_length(env, n, &arr) != napi_ok) {
    close_all(accepted, n);
    free(accepted);
    return throw_errno(env, "acceptAndClose", ENOMEM);
  }
  for (size_t i = 0; i < n; i++) {
    napi_value v;
    napi_create_int32(env, accepted[i], &v);
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  free(accepted);
  return arr;
}

void fdpass_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"sendFds", NULL, js_send_fds, NULL, NULL, NULL, napi_default, NULL},
      {"recvFds", NULL, js_recv_fds, NULL, NULL, NULL, napi_default, NULL},
      {"udpListenerName", NULL, js_udp_listener_name, NULL, NULL, NULL, napi_default, NULL},
      {"tcpListenerName", NULL, js_tcp_listener_name, NULL, NULL, NULL, napi_default, NULL},
      {"dupFd", NULL, js_dup_fd, NULL, NULL, NULL, napi_default, NULL},
      {"acceptAndClose", NULL, js_accept_and_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
