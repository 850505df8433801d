/*
 * Event-loop tuning for the threads that serve DNS (Linux; Node-API 8 + libuv).
 *
 * loopIdleTimeOff(): Node.js configures every event loop with UV_METRICS_IDLE_TIME (for
 * performance.eventLoopUtilization()). With that flag libuv polls twice whenever it would
 * block: epoll_pwait with a zero timeout, then, when nothing was ready, the blocking one. A
 * server that sleeps between datagrams (any fixed, moderate query rate) therefore makes four
 * system calls per query instead of three. This clears the flag on the calling thread's loop.
 * Cost: eventLoopUtilization() reports the loop as never idle from then on (node-local-dns
 * does not read it).
 *
 * libuv has no API to unset the option, so this writes libuv's private loop fields: the
 * first word of loop->internal_fields is the flags word that uv_loop_configure sets
 * (libuv 1.39 to this day). Refused, and nothing written, unless the libuv running is the
 * major.minor this was compiled against and the flag is found set where expected.
 * Returns "" when cleared, else why not (one line for the log).
 */
#include <stdio.h>
#include <node_api.h>
#include <uv.h>

static const char *idle_time_off(napi_env env, char *why, size_t why_len) {
  unsigned int running = uv_version();
  if ((running >> 8) != (UV_VERSION_HEX >> 8)) {
    snprintf(why, why_len, "libuv %s at run time, the addon was built against %d.%d", uv_version_string(), UV_VERSION_MAJOR, UV_VERSION_MINOR);
    return why;
  }
  if (UV_VERSION_HEX < 0x012700) return "libuv older than 1.39";
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL || loop->internal_fields == NULL) return "no event loop";
  unsigned int *flags = (unsigned int *)loop->internal_fields;
  if ((*flags & UV_METRICS_IDLE_TIME) == 0) return "idle-time metrics not enabled on this loop";
  *flags &= ~(unsigned int)UV_METRICS_IDLE_TIME;
  return "";
}

static napi_value js_loop_idle_time_off(napi_env env, napi_callback_info info) {
  (void)info;
  char why[128];
  napi_value r;
  napi_create_string_utf8(env, idle_time_off(env, why, sizeof why), NAPI_AUTO_LENGTH, &r);
  return r;
}

void loop_init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "loopIdleTimeOff", NAPI_AUTO_LENGTH, js_loop_idle_time_off, NULL, &fn) == napi_ok) {
    napi_set_named_property(env, exports, "loopIdleTimeOff", fn);
  }
}
