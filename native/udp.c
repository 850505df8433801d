/*
 * Batched UDP socket for Node.js (Node-API 8 + libuv readiness), Linux only.
 *
 * One object per socket. JS hands it, once (start()), four preallocated buffers:
 *   recvArena  slots * slotSize bytes: datagram i is received at i * slotSize;
 *   recvMeta   Int32Array, 8 ints per slot: [len, flags, port, family, a0, a1, a2, a3]
 *              (flags bit 0: truncated (MSG_TRUNC); a0..a3: the address bytes as stored in
 *              sockaddr, IPv4 in a0 only);
 *   sendArena  replies, at offsets JS chooses;
 *   sendMeta   Int32Array, 8 ints per reply: [offset, len, port, family, a0, a1, a2, a3].
 * and a callback onBatch(n). When the socket is readable (uv_poll on the loop thread) this
 * reads up to `slots` datagrams with one recvmmsg and calls onBatch(n) once; it repeats while
 * batches come back full, at most MAX_BATCHES_PER_WAKEUP times (level-triggered polling
 * brings it back for the rest); a receive error (ICMP unreachable surfaced on a connected
 * socket) is reported as onBatch(-errno). send(count) sends sendMeta[0..count) with sendmmsg.
 * Nothing is allocated per datagram; no DNS byte is looked at here.
 *
 * Send errors: EAGAIN/EWOULDBLOCK/ENOBUFS (send buffer full) drop the rest of the batch;
 * send() returns how many were sent, and the caller counts the rest as dropped (a DNS client
 * retries; queueing would be an unbounded resource). Other errors skip the failing datagram
 * (e.g. EINVAL for a bad destination) and continue.
 *
 * Lifetime: close() stops polling, closes the fd and the uv handle; it is safe from inside
 * onBatch (the reading loop checks the fd after every call). The struct is freed when both
 * the JS object was collected and the uv handle closed. An async cleanup hook closes the
 * handle when the environment (main thread or worker) shuts down. No global state: every
 * env (worker thread) gets its own class.
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
#include <node_api.h>
#include <uv.h>

#define META_INTS 8
#define MAX_SLOTS 1024
#define MAX_BATCHES_PER_WAKEUP 8
#define MAX_DATAGRAM 65535

typedef struct udp_sock {
  napi_env env;
  int fd;
  int family; /* AF_INET or AF_INET6 */
  int refs;   /* 1 for the JS object, 1 for the uv handle while it is open */
  int polling;
  int handle_open;
  uv_poll_t poll;
  napi_async_cleanup_hook_handle cleanup;
  napi_async_context async_ctx;
  /* Strong references to what JS handed over in start(); NULL before. */
  napi_ref on_batch;
  napi_ref recv_arena_ref, recv_meta_ref, send_arena_ref, send_meta_ref;
  uint8_t *recv_arena;
  size_t recv_arena_len;
  int32_t *recv_meta;
  size_t recv_meta_ints;
  uint8_t *send_arena;
  size_t send_arena_len;
  int32_t *send_meta;
  size_t send_meta_ints;
  uint32_t slots;
  uint32_t slot_size;
  /* Per-slot kernel structures, allocated once in start(). */
  struct mmsghdr *rmsgs;
  struct iovec *riov;
  struct sockaddr_in6 *raddrs;
  struct mmsghdr *smsgs;
  struct iovec *siov;
  struct sockaddr_in6 *saddrs;
  uint32_t send_max;
} udp_sock;

/* ---- helpers ---- */

/* Shared with fdpass.c: throws an Error with code ("EBADF", ...), errno and syscall, as Node's own. */
napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  const char *name = uv_err_name(uv_translate_sys_error(err)); /* "ECONNREFUSED", ... */
  snprintf(msg, sizeof msg, "%s %s: %s", what, name, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errno_v, syscall_v;
  napi_create_int32(env, err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  napi_throw(env, error);
  return NULL;
}

/* Shared with fdpass.c: throws a TypeError with code ERR_INVALID_ARG. */
napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

static napi_value make_int(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

static udp_sock *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_unwrap(env, self, &data) != napi_ok) return NULL;
  return (udp_sock *)data;
}

static int get_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static void release(udp_sock *s) {
  if (--s->refs > 0) return;
  free(s->rmsgs);
  free(s->riov);
  free(s->raddrs);
  free(s->smsgs);
  free(s->siov);
  free(s->saddrs);
  free(s);
}

/* Parses a literal address into sa (family of the socket); 0 on success. */
static int parse_addr(udp_sock *s, const char *text, int port, struct sockaddr_in6 *sa, socklen_t *len) {
  memset(sa, 0, sizeof *sa);
  if (port < 0 || port > 65535) return EINVAL;
  if (s->family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)sa;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (text[0] == '\0') a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, text, &a->sin_addr) != 1) return EINVAL;
    *len = sizeof *a;
  } else {
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons((uint16_t)port);
    if (text[0] == '\0') sa->sin6_addr = in6addr_any;
    else if (inet_pton(AF_INET6, text, &sa->sin6_addr) != 1) return EINVAL;
    *len = sizeof *sa;
  }
  return 0;
}

static int get_addr_arg(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, buf, cap, &n) != napi_ok) return 0;
  return n < cap - 1;
}

static void delete_ref(napi_env env, napi_ref *r) {
  if (*r != NULL) {
    napi_delete_reference(env, *r);
    *r = NULL;
  }
}

/* ---- closing ---- */

static void on_handle_closed(uv_handle_t *h) {
  udp_sock *s = (udp_sock *)h->data;
  s->handle_open = 0;
  if (s->cleanup != NULL) {
    napi_remove_async_cleanup_hook(s->cleanup);
    s->cleanup = NULL;
  }
  release(s);
}

/* Stops polling and closes the fd and the handle; idempotent. No JS is called. */
static void close_socket(udp_sock *s) {
  if (s->polling) {
    uv_poll_stop(&s->poll);
    s->polling = 0;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  if (s->handle_open && !uv_is_closing((uv_handle_t *)&s->poll)) uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static void drop_js_refs(udp_sock *s) {
  napi_env env = s->env;
  delete_ref(env, &s->on_batch);
  delete_ref(env, &s->recv_arena_ref);
  delete_ref(env, &s->recv_meta_ref);
  delete_ref(env, &s->send_arena_ref);
  delete_ref(env, &s->send_meta_ref);
  s->recv_arena = NULL;
  s->recv_meta = NULL;
  s->send_arena = NULL;
  s->send_meta = NULL;
  if (s->async_ctx != NULL) {
    napi_async_destroy(env, s->async_ctx);
    s->async_ctx = NULL;
  }
}

/* Environment shutdown (process exit, worker termination): close what is still open. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  udp_sock *s = (udp_sock *)arg;
  s->cleanup = handle;
  if (s->handle_open) {
    close_socket(s); /* on_handle_closed removes the hook */
  } else {
    napi_remove_async_cleanup_hook(handle);
    s->cleanup = NULL;
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  udp_sock *s = (udp_sock *)data;
  (void)env;
  /* An object collected unclosed is closed here. */
  close_socket(s);
  drop_js_refs(s);
  release(s);
}

/* ---- receiving ---- */

static void fill_meta(udp_sock *s, uint32_t i, const struct mmsghdr *m) {
  int32_t *meta = s->recv_meta + (size_t)i * META_INTS;
  const struct sockaddr_in6 *sa = &s->raddrs[i];
  uint32_t len = m->msg_len;
  meta[0] = (int32_t)(len > s->slot_size ? s->slot_size : len);
  meta[1] = (m->msg_hdr.msg_flags & MSG_TRUNC) ? 1 : 0;
  meta[4] = meta[5] = meta[6] = meta[7] = 0;
  if (sa->sin6_family == AF_INET6 && m->msg_hdr.msg_namelen >= sizeof(struct sockaddr_in6)) {
    meta[2] = ntohs(sa->sin6_port);
    meta[3] = 6;
    memcpy(&meta[4], &sa->sin6_addr, 16);
  } else if (sa->sin6_family == AF_INET && m->msg_hdr.msg_namelen >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    meta[2] = ntohs(a->sin_port);
    meta[3] = 4;
    memcpy(&meta[4], &a->sin_addr, 4);
  } else {
    meta[2] = 0;
    meta[3] = 0; /* unknown sender: JS drops it */
  }
}

/* One recvmmsg into the arena; returns the count, 0 when nothing is queued, -errno on an error. */
static int receive_batch(udp_sock *s) {
  for (uint32_t i = 0; i < s->slots; i++) {
    s->riov[i].iov_base = s->recv_arena + (size_t)i * s->slot_size;
    s->riov[i].iov_len = s->slot_size;
    memset(&s->rmsgs[i].msg_hdr, 0, sizeof s->rmsgs[i].msg_hdr);
    s->rmsgs[i].msg_hdr.msg_iov = &s->riov[i];
    s->rmsgs[i].msg_hdr.msg_iovlen = 1;
    s->rmsgs[i].msg_hdr.msg_name = &s->raddrs[i];
    s->rmsgs[i].msg_hdr.msg_namelen = sizeof s->raddrs[i];
    s->rmsgs[i].msg_len = 0;
  }
  int n;
  do {
    n = recvmmsg(s->fd, s->rmsgs, s->slots, MSG_DONTWAIT, NULL);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return 0;
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno; /* e.g. ECONNREFUSED (ICMP) */
  for (int i = 0; i < n; i++) fill_meta(s, (uint32_t)i, &s->rmsgs[i]);
  return n;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  udp_sock *s = (udp_sock *)h->data;
  (void)events;
  if (s->fd < 0 || s->on_batch == NULL) return;
  int pending_err = 0;
  if (status < 0) {
    /* POLLERR (a pending socket error, e.g. ICMP on a connected socket): libuv has stopped the
     * handle. Take the error (reported below as onBatch(-errno)) and poll again, or the socket
     * would go deaf. */
    socklen_t len = sizeof pending_err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &pending_err, &len) != 0) pending_err = 0;
    if (uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0) {
      s->polling = 0;
      return;
    }
  }
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  for (int b = 0; b < MAX_BATCHES_PER_WAKEUP && s->fd >= 0 && s->on_batch != NULL; b++) {
    int n = pending_err != 0 ? -pending_err : receive_batch(s);
    pending_err = 0;
    if (n == 0) break;
    /* n < 0: an error (ICMP unreachable surfaced on a connected socket): reported as onBatch(-errno). */
    napi_value fn, recv, arg, result;
    if (napi_get_reference_value(env, s->on_batch, &fn) != napi_ok || fn == NULL) break;
    napi_get_global(env, &recv); /* make_callback needs an object receiver */
    napi_create_int32(env, n, &arg);
    /* make_callback: runs microtasks and reports an exception as uncaught, like any I/O callback. */
    napi_status st = napi_make_callback(env, s->async_ctx, recv, fn, 1, &arg, &result);
    if (st == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
      break;
    }
    if (st != napi_ok) break;
    if (n > 0 && (uint32_t)n < s->slots) break;
  }
  napi_close_handle_scope(env, scope);
}

/* ---- JS methods ---- */

/* new UdpSocket(family: 4 | 6, reusePort: boolean, adoptFd?: number): with adoptFd (a bound
 * datagram socket of that family, e.g. received through fdpass.c), the object takes that fd
 * over (closes it on close()) instead of creating one; on a throw the caller still owns it. */
static napi_value js_new(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], self;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok || argc < 2) return throw_type(env, "family, reusePort");
  int32_t family;
  bool reuse = false;
  if (!get_int(env, argv[0], &family) || (family != 4 && family != 6)) return throw_type(env, "family must be 4 or 6");
  napi_get_value_bool(env, argv[1], &reuse);
  int af = family == 6 ? AF_INET6 : AF_INET;
  int32_t adopt = -1;
  napi_valuetype t = napi_undefined;
  if (argc >= 3 && napi_typeof(env, argv[2], &t) == napi_ok && t != napi_undefined && (!get_int(env, argv[2], &adopt) || adopt < 0)) {
    return throw_type(env, "adoptFd must be a descriptor");
  }
  int fd = adopt;
  if (adopt >= 0) {
    int type = 0, domain = 0;
    socklen_t l1 = sizeof type, l2 = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) != 0 || getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l2) != 0) {
      return throw_errno(env, "adopt", errno);
    }
    if (type != SOCK_DGRAM || domain != af) return throw_errno(env, "adopt", EINVAL);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return throw_errno(env, "adopt", errno);
  } else {
    fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return throw_errno(env, "socket", errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, "SO_REUSEPORT", e);
    }
    if (af == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  udp_sock *s = calloc(1, sizeof *s);
  if (s == NULL) {
    if (adopt < 0) close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  s->env = env;
  s->fd = fd;
  s->family = af;
  s->refs = 1;
  if (napi_wrap(env, self, s, finalize, NULL, NULL) != napi_ok) {
    if (adopt < 0) close(fd);
    free(s);
    return throw_errno(env, "napi_wrap", EINVAL);
  }
  return self;
}

/* Reads the (address: string, port: number) arguments of bind and connect into a sockaddr of
 * the socket's family; 0, or an errno-style code (EINVAL for a bad argument, EBADF when closed). */
static int sockaddr_args(napi_env env, napi_callback_info info, udp_sock **out, struct sockaddr_in6 *sa, socklen_t *len) {
  size_t argc = 2;
  napi_value argv[2];
  udp_sock *s = unwrap(env, info, &argc, argv);
  *out = s;
  char text[64];
  int32_t port;
  if (s == NULL || argc < 2 || !get_addr_arg(env, argv[0], text, sizeof text) || !get_int(env, argv[1], &port)) return -1;
  if (s->fd < 0) return EBADF;
  return parse_addr(s, text, port, sa, len);
}

/* bind(address: string, port: number): number (the bound port) */
static napi_value js_bind(napi_env env, napi_callback_info info) {
  udp_sock *s;
  struct sockaddr_in6 sa;
  socklen_t len;
  int e = sockaddr_args(env, info, &s, &sa, &len);
  if (e < 0) return throw_type(env, "address, port");
  if (e != 0) return throw_errno(env, "bind", e);
  if (bind(s->fd, (struct sockaddr *)&sa, len) != 0) return throw_errno(env, "bind", errno);
  len = sizeof sa;
  if (getsockname(s->fd, (struct sockaddr *)&sa, &len) != 0) return throw_errno(env, "getsockname", errno);
  return make_int(env, ntohs(sa.sin6_port)); /* sin_port and sin6_port share the offset */
}

/* setBufferSizes(recvBytes: number, sendBytes: number): 0 is "leave as is"; capped by the kernel. */
static napi_value js_set_buffer_sizes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  udp_sock *s = unwrap(env, info, &argc, argv);
  int32_t r, w;
  if (s == NULL || argc < 2 || !get_int(env, argv[0], &r) || !get_int(env, argv[1], &w)) return throw_type(env, "recvBytes, sendBytes");
  if (s->fd < 0) return throw_errno(env, "setsockopt", EBADF);
  if (r > 0) setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &r, sizeof r);
  if (w > 0) setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &w, sizeof w);
  return NULL;
}

static int typed_array_info(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *bytes) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok) return 0;
  if (type != want || *data == NULL) return 0;
  *bytes = type == napi_int32_array ? length * 4 : length;
  return 1;
}

/*
 * start(slots, slotSize, recvArena: Uint8Array, recvMeta: Int32Array, sendArena: Uint8Array,
 *       sendMeta: Int32Array, onBatch: (n: number) => void)
 */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  udp_sock *s = unwrap(env, info, &argc, argv);
  if (s == NULL || argc < 7) return throw_type(env, "start: 7 arguments");
  if (s->fd < 0) return throw_errno(env, "start", EBADF);
  if (s->on_batch != NULL) return throw_errno(env, "start", EINVAL);
  int32_t slots, slot_size;
  if (!get_int(env, argv[0], &slots) || slots < 1 || slots > MAX_SLOTS) return throw_type(env, "slots: 1..1024");
  if (!get_int(env, argv[1], &slot_size) || slot_size < 512 || slot_size > MAX_DATAGRAM) return throw_type(env, "slotSize: 512..65535");
  void *ra, *rm, *sa, *sm;
  size_t ra_len, rm_len, sa_len, sm_len;
  if (!typed_array_info(env, argv[2], napi_uint8_array, &ra, &ra_len) || ra_len < (size_t)slots * (size_t)slot_size) return throw_type(env, "recvArena: Uint8Array of slots * slotSize");
  if (!typed_array_info(env, argv[3], napi_int32_array, &rm, &rm_len) || rm_len < (size_t)slots * META_INTS * 4) return throw_type(env, "recvMeta: Int32Array of slots * 8");
  if (!typed_array_info(env, argv[4], napi_uint8_array, &sa, &sa_len) || sa_len == 0) return throw_type(env, "sendArena: Uint8Array");
  if (!typed_array_info(env, argv[5], napi_int32_array, &sm, &sm_len) || sm_len < META_INTS * 4) return throw_type(env, "sendMeta: Int32Array");
  napi_valuetype t;
  if (napi_typeof(env, argv[6], &t) != napi_ok || t != napi_function) return throw_type(env, "onBatch: function");
  uint32_t send_max = (uint32_t)(sm_len / (META_INTS * 4));
  if (send_max > MAX_SLOTS) send_max = MAX_SLOTS;
  s->rmsgs = calloc((size_t)slots, sizeof *s->rmsgs);
  s->riov = calloc((size_t)slots, sizeof *s->riov);
  s->raddrs = calloc((size_t)slots, sizeof *s->raddrs);
  s->smsgs = calloc(send_max, sizeof *s->smsgs);
  s->siov = calloc(send_max, sizeof *s->siov);
  s->saddrs = calloc(send_max, sizeof *s->saddrs);
  if (!s->rmsgs || !s->riov || !s->raddrs || !s->smsgs || !s->siov || !s->saddrs) return throw_errno(env, "calloc", ENOMEM);
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_errno(env, "napi_get_uv_event_loop", EINVAL);
  if (uv_poll_init_socket(loop, &s->poll, s->fd) != 0) return throw_errno(env, "uv_poll_init", EINVAL);
  s->poll.data = s;
  s->handle_open = 1;
  s->refs++;
  napi_add_async_cleanup_hook(env, on_env_cleanup, s, &s->cleanup);
  napi_value name;
  napi_create_string_utf8(env, "nodelocaldns.udp", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &s->async_ctx);
  napi_create_reference(env, argv[2], 1, &s->recv_arena_ref);
  napi_create_reference(env, argv[3], 1, &s->recv_meta_ref);
  napi_create_reference(env, argv[4], 1, &s->send_arena_ref);
  napi_create_reference(env, argv[5], 1, &s->send_meta_ref);
  napi_create_reference(env, argv[6], 1, &s->on_batch);
  s->recv_arena = ra;
  s->recv_arena_len = ra_len;
  s->recv_meta = rm;
  s->recv_meta_ints = rm_len / 4;
  s->send_arena = sa;
  s->send_arena_len = sa_len;
  s->send_meta = sm;
  s->send_meta_ints = sm_len / 4;
  s->slots = (uint32_t)slots;
  s->slot_size = (uint32_t)slot_size;
  s->send_max = send_max;
  if (uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0) return throw_errno(env, "uv_poll_start", EINVAL);
  s->polling = 1;
  return NULL;
}

/* Fills the kernel header for reply i from sendMeta; 0 when the entry is invalid. */
static int prepare_send(udp_sock *s, uint32_t i, uint32_t k) {
  const int32_t *m = s->send_meta + (size_t)i * META_INTS;
  int32_t off = m[0], len = m[1], port = m[2], fam = m[3];
  if (off < 0 || len <= 0 || len > MAX_DATAGRAM || (size_t)off + (size_t)len > s->send_arena_len) return 0;
  if (port <= 0 || port > 65535) return 0;
  struct sockaddr_in6 *sa = &s->saddrs[k];
  memset(sa, 0, sizeof *sa);
  socklen_t salen;
  if (fam == 4 && s->family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)sa;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    memcpy(&a->sin_addr, &m[4], 4);
    salen = sizeof *a;
  } else if (fam == 6 && s->family == AF_INET6) {
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons((uint16_t)port);
    memcpy(&sa->sin6_addr, &m[4], 16);
    salen = sizeof *sa;
  } else {
    return 0;
  }
  s->siov[k].iov_base = s->send_arena + off;
  s->siov[k].iov_len = (size_t)len;
  memset(&s->smsgs[k], 0, sizeof s->smsgs[k]);
  s->smsgs[k].msg_hdr.msg_name = sa;
  s->smsgs[k].msg_hdr.msg_namelen = salen;
  s->smsgs[k].msg_hdr.msg_iov = &s->siov[k];
  s->smsgs[k].msg_hdr.msg_iovlen = 1;
  return 1;
}

/*
 * send(count): sends sendMeta[0..count). Returns sent | dropped << 11 | errno << 22 (sent and
 * dropped are <= 1024; errno is that of the last failure, 0 if none); -EBADF once closed. See
 * the header for which errors drop the rest of the batch.
 */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  udp_sock *s = unwrap(env, info, &argc, argv);
  int32_t count;
  if (s == NULL || argc < 1 || !get_int(env, argv[0], &count)) return throw_type(env, "count");
  if (s->fd < 0 || s->send_meta == NULL) return make_int(env, -EBADF);
  if (count < 0 || (uint32_t)count > s->send_max) return throw_type(env, "count: 0..capacity of sendMeta");
  uint32_t sent = 0, dropped = 0, k = 0;
  int last_err = 0;
  for (uint32_t i = 0; i < (uint32_t)count; i++) {
    if (prepare_send(s, i, k)) {
      k++;
    } else {
      dropped++;
      last_err = EINVAL;
    }
  }
  uint32_t done = 0;
  while (done < k) {
    int n = sendmmsg(s->fd, s->smsgs + done, k - done, MSG_DONTWAIT);
    if (n > 0) {
      sent += (uint32_t)n;
      done += (uint32_t)n;
      continue;
    }
    int e = n < 0 ? errno : EIO;
    if (e == EINTR) continue;
    last_err = e;
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
      dropped += k - done;
      break;
    }
    /* This datagram failed (EPERM from a firewall, ECONNREFUSED left by ICMP, ...): skip it. */
    dropped++;
    done++;
  }
  if (last_err > 511) last_err = EIO;
  return make_int(env, (int32_t)(sent | (dropped << 11) | ((uint32_t)last_err << 22)));
}

/* connect(address, port): steer the socket away from the reuseport group (see udp-batched.ts). */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  udp_sock *s;
  struct sockaddr_in6 sa;
  socklen_t len;
  int e = sockaddr_args(env, info, &s, &sa, &len);
  if (e < 0) return throw_type(env, "address, port");
  if (e != 0) return throw_errno(env, "connect", e);
  if (connect(s->fd, (struct sockaddr *)&sa, len) != 0) return throw_errno(env, "connect", errno);
  return NULL;
}

/* localName(): "ip:port" or "[ip]:port" of the bound socket ("" when unknown), for error texts. */
static napi_value js_local_name(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  udp_sock *s = unwrap(env, info, &argc, NULL);
  if (s == NULL) return throw_type(env, "not a UdpSocket");
  struct sockaddr_in6 sa;
  socklen_t len = sizeof sa;
  char ip[INET6_ADDRSTRLEN] = "";
  char out[INET6_ADDRSTRLEN + 10] = "";
  if (s->fd >= 0 && getsockname(s->fd, (struct sockaddr *)&sa, &len) == 0) {
    if (sa.sin6_family == AF_INET6 && inet_ntop(AF_INET6, &sa.sin6_addr, ip, sizeof ip) != NULL) {
      snprintf(out, sizeof out, "[%s]:%u", ip, (unsigned)ntohs(sa.sin6_port));
    } else if (sa.sin6_family == AF_INET && inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof ip) != NULL) {
      snprintf(out, sizeof out, "%s:%u", ip, (unsigned)ntohs(((struct sockaddr_in *)&sa)->sin_port));
    }
  }
  napi_value r;
  napi_create_string_utf8(env, out, NAPI_AUTO_LENGTH, &r);
  return r;
}

/* close(): idempotent; safe inside onBatch. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  udp_sock *s = unwrap(env, info, &argc, NULL);
  if (s == NULL) return throw_type(env, "not a UdpSocket");
  close_socket(s);
  drop_js_refs(s);
  return NULL;
}

void fdpass_init(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"bind", NULL, js_bind, NULL, NULL, NULL, napi_default_method, NULL},
      {"setBufferSizes", NULL, js_set_buffer_sizes, NULL, NULL, NULL, napi_default_method, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default_method, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default_method, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default_method, NULL},
      {"localName", NULL, js_local_name, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "UdpSocket", NAPI_AUTO_LENGTH, js_new, NULL, sizeof methods / sizeof methods[0], methods, &cls) != napi_ok) return NULL;
  napi_set_named_property(env, exports, "UdpSocket", cls);
  napi_value meta, uv;
  napi_create_int32(env, META_INTS, &meta);
  napi_set_named_property(env, exports, "META_INTS", meta);
  /* The libuv the addon was compiled against ("major.minor"): src/server/udp-native.ts refuses an
   * addon built against another Node's headers (native/build.mjs picks them; npm's nodedir can
   * point elsewhere). */
  char ver[16];
  snprintf(ver, sizeof ver, "%d.%d", UV_VERSION_MAJOR, UV_VERSION_MINOR);
  napi_create_string_utf8(env, ver, NAPI_AUTO_LENGTH, &uv);
  napi_set_named_property(env, exports, "UV_BUILD_VERSION", uv);
  fdpass_init(env, exports); /* fdpass.c: SCM_RIGHTS hand-over of listening sockets */
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
