#!/bin/sh
# iptables back-end selector for a container that edits the node's netfilter rules.
#
# iptables 1.8 ships two back ends: "legacy" (the x_tables kernel API) and "nft"
# (the same command line translated to nf_tables). Rules added through one back end
# are ordered independently of rules added through the other, so a hostNetwork
# container must use whichever back end kubelet and kube-proxy use on that node.
#
# Usage:
#   iptables-wrapper --install   register this script (as /usr/sbin/iptables-wrapper)
#                                as the preferred alternative for iptables, iptables-save,
#                                iptables-restore and the ip6tables twins (image build)
#   iptables-wrapper --detect    print the node's back end ("legacy" or "nft"), change nothing
#   iptables-wrapper --select    detect, point the alternatives at the real binaries,
#                                print the back end (container start)
#   iptables|iptables-save|...   (called through the alternatives) select as above, then
#                                run the requested command with its arguments; later
#                                calls go straight to the real binary
#
# Detection, first match wins:
#   1. kubelet >= 1.17 creates the chain KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY in
#      the mangle table of the back end it uses: look in the nft ruleset, then legacy.
#   2. count rule lines ("-A ...") in iptables-legacy-save + ip6tables-legacy-save and in
#      iptables-nft-save + ip6tables-nft-save: the back end holding more rules is in use.
#   3. a tie (including no rules anywhere): nft, the default of current distributions.
#
# Environment:
#   IPTABLES_WRAPPER_MODE  "legacy" or "nft": skip detection and use that back end
#                          (for nodes where detection guesses wrong).
#   IPTABLES_WRAPPER_ROOT  filesystem root for the binaries and for update-alternatives
#                          --root (default: /). Tests point it at a scratch tree.
#
# Only POSIX sh: the image's /bin/sh is dash.
set -eu

root=${IPTABLES_WRAPPER_ROOT:-}
sbin="${root}/usr/sbin"
# Every update-alternatives call goes through here: with a scratch root it acts on
# that tree only (its own /etc/alternatives and /var/lib/dpkg/alternatives).
alternatives() {
    update-alternatives ${root:+--root "$root"} --quiet "$@"
}

log() {
    echo "iptables-wrapper: $*" >&2
}

# save_rules MODE [ARGS...]: IPv4 then IPv6 ruleset of one back end, errors dropped.
# iptables-nft-save 1.8.0-1.8.3 can loop forever on some rulesets, hence the timeout.
save_rules() {
    mode=$1
    shift
    for family in iptables ip6tables; do
        bin="$sbin/$family-$mode-save"
        [ -x "$bin" ] || continue
        if [ "$mode" = nft ]; then
            timeout 5 "$bin" "$@" 2>/dev/null || true
        else
            "$bin" "$@" 2>/dev/null || true
        fi
    done
}

has_kubelet_hint() {
    grep -qE '^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)( |$)'
}

count_rules() {
    grep -c '^-' || true
}

# detect_mode: prints "legacy" or "nft" on stdout and the reason on stderr.
detect_mode() {
    case "${IPTABLES_WRAPPER_MODE:-}" in
    legacy | nft)
        log "IPTABLES_WRAPPER_MODE=$IPTABLES_WRAPPER_MODE: using $IPTABLES_WRAPPER_MODE"
        echo "$IPTABLES_WRAPPER_MODE"
        return
        ;;
    "") ;;
    *) log "ignoring IPTABLES_WRAPPER_MODE=$IPTABLES_WRAPPER_MODE (want legacy or nft)" ;;
    esac
    if [ ! -x "$sbin/iptables-nft" ]; then
        log "iptables-nft not installed: using legacy"
        echo legacy
        return
    fi
    if [ ! -x "$sbin/iptables-legacy" ]; then
        log "iptables-legacy not installed: using nft"
        echo nft
        return
    fi
    if save_rules nft -t mangle | has_kubelet_hint; then
        log "kubelet hint chain found in the nft ruleset: using nft"
        echo nft
        return
    fi
    # No "-t mangle" for legacy: asking for a table makes the kernel create it.
    if save_rules legacy | has_kubelet_hint; then
        log "kubelet hint chain found in the legacy ruleset: using legacy"
        echo legacy
        return
    fi
    legacy_rules=$(save_rules legacy | count_rules)
    nft_rules=$(save_rules nft | count_rules)
    if [ "$legacy_rules" -gt "$nft_rules" ]; then
        log "legacy has $legacy_rules rules, nft has $nft_rules: using legacy"
        echo legacy
    else
        log "legacy has $legacy_rules rules, nft has $nft_rules: using nft"
        echo nft
    fi
}

# point_alternatives MODE: iptables and ip6tables (with their -save/-restore slaves)
# now resolve to the real binaries of MODE instead of this script.
point_alternatives() {
    mode=$1
    for family in iptables ip6tables; do
        [ -x "$sbin/$family-$mode" ] || continue
        alternatives --set "$family" "/usr/sbin/$family-$mode" >/dev/null ||
            log "could not point $family at $family-$mode (the next call detects again)"
    done
}

check_installed() {
    for mode in legacy nft; do
        if ! version=$("$sbin/iptables-$mode" --version 2>/dev/null); then
            log "ERROR: iptables-$mode is not installed"
            exit 1
        fi
        case "$version" in
        *v1.8.[0123]\ * | *v1.8.[0123])
            log "ERROR: $version: iptables 1.8.0 to 1.8.3 mis-handle nft rulesets; install 1.8.4 or newer"
            exit 1
            ;;
        esac
    done
}

install_wrapper() {
    check_installed
    if [ ! -x "$sbin/iptables-wrapper" ]; then
        log "ERROR: $sbin/iptables-wrapper is missing; copy this script there first"
        exit 1
    fi
    for family in iptables ip6tables; do
        alternatives \
            --install "/usr/sbin/$family" "$family" /usr/sbin/iptables-wrapper 100 \
            --slave "/usr/sbin/$family-save" "$family-save" /usr/sbin/iptables-wrapper \
            --slave "/usr/sbin/$family-restore" "$family-restore" /usr/sbin/iptables-wrapper
    done
}

name=${0##*/}
case "$name" in
iptables | iptables-save | iptables-restore | ip6tables | ip6tables-save | ip6tables-restore)
    mode=$(detect_mode)
    point_alternatives "$mode"
    family=${name%%-*}
    suffix=${name#"$family"}
    # Straight to the real binary: never back through the alternatives, so no loop
    # even when point_alternatives failed.
    exec "$sbin/$family-$mode$suffix" "$@"
    ;;
esac

case "${1:-}" in
--install)
    install_wrapper
    ;;
--detect)
    detect_mode
    ;;
--select)
    mode=$(detect_mode)
    point_alternatives "$mode"
    echo "$mode"
    ;;
*)
    log "usage: iptables-wrapper --install | --detect | --select (or call it as iptables, iptables-save, ...)"
    exit 2
    ;;
esac
