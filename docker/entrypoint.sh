#!/bin/sh
# Container entrypoint of node-local-dns.
#
# Contract:
#   - Arguments that start with "-" (the node-cache flags, e.g. `-localip ... -conf ...`)
#     or no arguments at all: pick the node's iptables back end once, then replace this
#     shell with the agent (`exec`), so the agent runs as PID 1 and the container
#     runtime's SIGTERM reaches it directly. The agent removes its iptables rules and
#     its interface on SIGTERM; a shell in between would swallow the signal and the
#     rules would be left behind when the grace period ends in SIGKILL.
#   - Any other first argument is a command to run instead (`sh`, `iptables-save`, ...),
#     also through exec.
#
# Environment:
#   NODE_LOCAL_DNS_NODE              node binary (default: node on PATH)
#   NODE_LOCAL_DNS_MAIN              agent entry file (default: /app/bin/node-local-dns.js, which turns on
#                                    the compile cache before loading src/main.ts)
#   NODE_LOCAL_DNS_IPTABLES_WRAPPER  back-end selector to run before the agent
#                                    (default: iptables-wrapper on PATH; empty: skip)
set -eu

case "${1:-}" in
"" | -*) ;;
*) exec "$@" ;;
esac

wrapper=${NODE_LOCAL_DNS_IPTABLES_WRAPPER-iptables-wrapper}
if [ -n "$wrapper" ] && command -v "$wrapper" >/dev/null 2>&1; then
    # Selecting now keeps the detection out of the agent's first rule check. Failure is
    # not fatal: every iptables call still goes through the wrapper until one succeeds.
    if ! mode=$("$wrapper" --select); then
        echo "node-local-dns: iptables back-end selection failed; it is retried on the first iptables call" >&2
    else
        echo "node-local-dns: iptables back end: $mode" >&2
    fi
fi

exec "${NODE_LOCAL_DNS_NODE:-node}" "${NODE_LOCAL_DNS_MAIN:-/app/bin/node-local-dns.js}" "$@"
