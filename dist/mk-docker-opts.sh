#!/bin/sh
# mk-docker-opts.sh: Docker daemon options from the subnet.env flanneld writes,
# with the options and output of upstream flannel's dist/mk-docker-opts.sh, so
# an ExecStartPost line or a docker.service drop-in written for upstream works
# unchanged:
#
#   DOCKER_OPT_BIP="--bip=10.1.74.1/24"
#   DOCKER_OPT_IPMASQ="--ip-masq=true"
#   DOCKER_OPT_MTU="--mtu=1472"
#   DOCKER_OPTS=" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472"
#
# Docker masquerades its bridge unless flanneld already does (-ip-masq), hence
# --ip-masq is the opposite of FLANNEL_IPMASQ.
set -u

usage() {
	cat >&2 <<USAGE
usage: $0 [-f FLANNEL-ENV-FILE] [-d DOCKER-ENV-FILE] [-i] [-c] [-m] [-k COMBINED-KEY]

Writes Docker daemon options for this node's flannel subnet.
  -f FILE  the subnet.env flanneld wrote (default /run/flannel/subnet.env)
  -d FILE  where to write the options (default /run/docker_opts.env)
  -i       one variable per option (DOCKER_OPT_BIP, DOCKER_OPT_IPMASQ, DOCKER_OPT_MTU)
  -c       all options in one variable (DOCKER_OPTS, or the -k name)
  -k NAME  the name of that variable; a value it already has in the
           environment comes first
  -m       leave --ip-masq out (older Docker versions)
Without -i and -c, both are written.
USAGE
	exit 1
}

subnet_env=/run/flannel/subnet.env
out=/run/docker_opts.env
key=DOCKER_OPTS
individual=false
combined=false
with_masq=true

while getopts "f:d:icmk:h" opt; do
	case "$opt" in
	f) subnet_env=$OPTARG ;;
	d) out=$OPTARG ;;
	i) individual=true ;;
	c) combined=true ;;
	m) with_masq=false ;;
	k) key=$OPTARG ;;
	*) usage ;;
	esac
done
if [ "$individual" = false ] && [ "$combined" = false ]; then
	individual=true
	combined=true
fi
case "$key" in
[A-Za-z_]*) ;;
*) echo "invalid variable name for -k: $key" >&2; exit 1 ;;
esac

FLANNEL_SUBNET=
FLANNEL_MTU=
FLANNEL_IPMASQ=
if [ -f "$subnet_env" ]; then
	# subnet.env is KEY=value lines (docs/compatibility.md, subnet.env).
	. "$subnet_env"
fi

bip=
mtu=
masq=
[ -n "$FLANNEL_SUBNET" ] && bip="--bip=$FLANNEL_SUBNET"
[ -n "$FLANNEL_MTU" ] && mtu="--mtu=$FLANNEL_MTU"
if [ -n "$FLANNEL_IPMASQ" ] && [ "$with_masq" = true ]; then
	case "$FLANNEL_IPMASQ" in
	true) masq="--ip-masq=false" ;;
	false) masq="--ip-masq=true" ;;
	*) echo "Invalid value of FLANNEL_IPMASQ: $FLANNEL_IPMASQ" >&2; exit 1 ;;
	esac
fi

# The combined value: what the variable already holds, then every option, each after a space.
eval "existing=\${$key:-}"
all=
[ -n "$existing" ] && all="$existing "

: >"$out" || exit 1
for pair in "BIP:$bip" "IPMASQ:$masq" "MTU:$mtu"; do
	name=${pair%%:*}
	value=${pair#*:}
	[ -n "$value" ] || continue
	[ "$individual" = true ] && printf 'DOCKER_OPT_%s="%s"\n' "$name" "$value" >>"$out"
	all="$all $value"
done
[ "$combined" = true ] && printf '%s="%s"\n' "$key" "$all" >>"$out"

# The subnet Docker's bridge gets must not already be routed through a gateway.
if [ -n "$FLANNEL_SUBNET" ] && command -v ip >/dev/null 2>&1; then
	prefix=${FLANNEL_SUBNET%/*}
	len=${FLANNEL_SUBNET#*/}
	network="${prefix%.*}.$((${prefix##*.} - 1))/$len"
	clash=$(ip route show "$network" 2>/dev/null | grep via)
	if [ -n "$clash" ]; then
		echo "Your routing table already contains the subnet: $clash" >&2
		exit 1
	fi
fi
exit 0
