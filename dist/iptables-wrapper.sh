#!/bin/sh
# iptables-wrapper.sh: picks the iptables backend the host uses (legacy or
# nft) the first time any iptables command runs in the image, then runs the
# command with it. The container shares the host's network namespace, and
# rules written with the other backend than kube-proxy's and the kubelet's
# would sit in a table nobody else reads. Installed in the image as
# iptables, iptables-save, iptables-restore and their ip6tables twins.
#
# The choice: a KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY chain in the mangle
# table says which backend the kubelet uses; without one, the backend that
# holds more rules wins; with none anywhere, nft. It is remembered in
# $IPTABLES_WRAPPER_MODE_FILE (default /run/iptables-wrapper-mode).
set -u

mode_file=${IPTABLES_WRAPPER_MODE_FILE:-/run/iptables-wrapper-mode}

rules() {
	# $1: legacy or nft. Lines of rules (-A) in both families.
	{ "iptables-$1-save" 2>/dev/null; "ip6tables-$1-save" 2>/dev/null; } | grep -c '^-'
}

hint() {
	# $1: legacy or nft. Whether the kubelet's marker chains are there.
	{ "iptables-$1-save" -t mangle 2>/dev/null; "ip6tables-$1-save" -t mangle 2>/dev/null; } |
		grep -qE '^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) '
}

choose() {
	if hint nft; then echo nft; return; fi
	if hint legacy; then echo legacy; return; fi
	if [ "$(rules legacy)" -gt "$(rules nft)" ]; then echo legacy; else echo nft; fi
}

mode=
[ -r "$mode_file" ] && mode=$(cat "$mode_file")
case "$mode" in
legacy | nft) ;;
*)
	mode=$(choose)
	echo "$mode" >"$mode_file" 2>/dev/null || true
	;;
esac

# iptables -> iptables-nft, iptables-save -> iptables-nft-save, ip6tables-restore -> ip6tables-nft-restore.
cmd=${0##*/}
case "$cmd" in
iptables | ip6tables) exec "$cmd-$mode" "$@" ;;
iptables-save | iptables-restore | ip6tables-save | ip6tables-restore) exec "${cmd%-*}-$mode-${cmd##*-}" "$@" ;;
*) echo "iptables-wrapper.sh: run it as iptables, iptables-save, iptables-restore or their ip6tables twins, not as $cmd" >&2; exit 2 ;;
esac
