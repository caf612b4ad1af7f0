#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# sluice benchmark harness. See bench/README.md and /work/shared/BENCH-METHOD.md.
#
#   bench/run.sh full    the whole suite (make bench), results in docs/benchmarks/
#   bench/run.sh quick   a subset under 3 minutes (make bench-quick),
#                        results in docs/benchmarks/quick/
#   bench/run.sh smoke   smallest size, one short pair: proves the harness
#                        works (tests/bench_smoke.sh), results in a temp dir
#
# Overrides (environment): OUT=DIR SIZES="1 10" SYSTEMS="sluice nft-set"
#   NOMATCH_SYSTEMS="..." PAIRS=5 SLICE=2 FLOWS=10000 PROGRUN_SIZES="10 1000"
#   LOAD_TIMEOUT=300 GEN_CPU=0 RX_CPU=1 CHAIN_KS="1 2 4 8" CHAIN_RULES=4
#   IPT_SIZES="10 1000 10000" (sluice iptables import vs iptables-input and
#   nft-set) LB_SYSTEMS="sluice-lb ipt-dnat nft-numgen" LB_SERVICES=1000
#   LBNEW_SYSTEMS="..." (default: LB_SYSTEMS) LBNEW_FLOWS=2147483647 (the lb
#   services with a new flow per packet: a fresh generator seed each slice)
#   CTNAT_SYSTEMS="fwd-plain sluice-ctnat nf-ctnat" OBS_SYSTEMS="fwd-plain sluice-obs"
#   (also sluice-fm, sluice-http: its parts alone; sluice-router and
#   sluice-router-obs: the same on sluice's router NF instead of the kernel)
#   OBS_GEN_EXTRA="-p tcp4" (obs scenario: TCP SYNs instead of UDP)
#   (SIZES= SYSTEMS= NOMATCH_SYSTEMS= EXTRA_LIMITS= PROGRUN_SIZES= with
#   CHAIN_KS set runs the chain-length scenario alone)
#
# Topology: namespace sbgen-ID holds two veths whose peers sit in sbdut-ID:
#   ga-ID -> da-ID   reference A: bare XDP drop (counts, drops)
#   gb-ID -> db-ID   system B under test
# Forwarding scenarios (lb, ctnat, obs) add a sink namespace sbsnk-ID:
#   dc-ID (DUT, 10.88.0.2) -> kc-ID (sink, XDP drop and count in its own
#   threaded NAPI on GEN_CPU, so that the sink's work is not charged to DB's
#   thread);
#   the DUT forwards what reaches DB to 10.90/16 (backends) and 10.99/16 via
#   the sink. Their figure is the same CPU time of DB's NAPI thread divided by
#   the packets the sink received: receive + the system + routing + transmit.
# The generator (build/bench/sbench gen: BPF_PROG_RUN with live frames and a
# DEVMAP redirect) runs on GEN_CPU; the receiving veths use threaded NAPI with
# their NAPI threads pinned to RX_CPU (split mode). The primary figure is the
# CPU time of the receiving NAPI thread (/proc/PID/schedstat, which excludes
# steal time) divided by the packets that the receiving program counted.
set -euo pipefail

MODE=${1:-quick}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SLUICE=$ROOT/build/sluice
SB=$ROOT/build/bench/sbench
RULES=$ROOT/bench/rules.py

case "$MODE" in
full)
	: "${OUT:=$ROOT/docs/benchmarks}"
	: "${SIZES=1 10 100 1000 10000 65536}"
	: "${SYSTEMS=sluice iptables-raw iptables-input iptables-legacy nft-chain nft-set ipset xdp-filter}"
	: "${NOMATCH_SYSTEMS=sluice iptables-raw nft-chain xdp-filter}"
	: "${PAIRS:=5}" "${SLICE:=2}" "${PROGRUN_SIZES=10 1000 65536}"
	: "${PROGRUN_RUNS:=9}" "${PROGRUN_REPEAT:=200000}"
	: "${CHAIN_KS=1 2 4 8}"
	: "${IPT_SIZES=10 1000 10000}"
	;;
quick)
	: "${OUT:=$ROOT/docs/benchmarks/quick}"
	: "${SIZES=10 1000}"
	: "${SYSTEMS=sluice iptables-raw nft-set}"
	: "${NOMATCH_SYSTEMS=sluice}"
	: "${PAIRS:=3}" "${SLICE:=1}" "${PROGRUN_SIZES=10 1000 65536}"
	: "${PROGRUN_RUNS:=5}" "${PROGRUN_REPEAT:=100000}"
	: "${CHAIN_KS=1 8}"
	: "${IPT_SIZES=10 10000}"
	;;
smoke)
	: "${OUT:=$(mktemp -d /tmp/sbench-smoke.XXXXXX)}"
	: "${SIZES=1}"
	: "${SYSTEMS=sluice iptables-raw}"
	: "${NOMATCH_SYSTEMS=sluice}"
	: "${PAIRS:=1}" "${SLICE:=0.5}" "${PROGRUN_SIZES=1}"
	: "${PROGRUN_RUNS:=3}" "${PROGRUN_REPEAT:=10000}"
	: "${CHAIN_KS=2}"
	: "${IPT_SIZES=}" "${LB_SYSTEMS=}" "${CTNAT_SYSTEMS=}" "${OBS_SYSTEMS=}"
	;;
*)
	echo "usage: bench/run.sh full|quick|smoke" >&2
	exit 2
	;;
esac
: "${FLOWS:=10000}" "${LOAD_TIMEOUT:=300}" "${GEN_CPU:=0}" "${RX_CPU:=1}"
# Chain-length scenario: K firewall instances on DB's ingress chain, each with
# CHAIN_RULES non-matching rules; all accept except the last, which drops.
: "${CHAIN_RULES:=4}"
EXTRA_LIMITS=${EXTRA_LIMITS-xdp-parse}
: "${LB_SYSTEMS=sluice-lb ipt-dnat nft-numgen}" "${LB_SERVICES:=1000}"
# Scenario lb-new: the lb services, but nearly every packet opens a new flow
# (out of LBNEW_FLOWS 5-tuples, a new seed per slice), where netfilter runs
# its NAT rules and creates a conntrack entry per packet.
: "${LBNEW_SYSTEMS=$LB_SYSTEMS}" "${LBNEW_FLOWS:=2147483647}"
: "${CTNAT_SYSTEMS=fwd-plain sluice-ctnat nf-ctnat}" "${OBS_SYSTEMS=fwd-plain sluice-obs}"
# Systems of the iptables-import scenario (sluice-ipt and its peers).
IPT_SYSTEMS=${IPT_SYSTEMS-sluice-ipt iptables-input nft-set}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
[ -x "$SLUICE" ] || die "$SLUICE missing: run make first"

# ---- packages (idempotent) ----------------------------------------------
need_pkgs() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
PKGS=(clang gcc make libbpf-dev libelf-dev zlib1g-dev bpftool iproute2 python3
      iptables nftables util-linux conntrack)
[ "$MODE" != smoke ] && PKGS+=(gnuplot-nox)
[[ " $SYSTEMS " == *" ipset "* ]] && PKGS+=(ipset)
[[ " $SYSTEMS " == *" xdp-filter "* ]] && PKGS+=(xdp-tools)
need_pkgs "${PKGS[@]}"

# ---- build the generator ---------------------------------------------------
make -s -f bench/gen/Makefile OUT=build/bench >/dev/null || die "building bench/gen failed"

# ---- topology ----------------------------------------------------------------
ID=$(printf '%04x' $((RANDOM % 65536)))
NSG=sbgen-$ID
NSD=sbdut-$ID
GA=ga$ID GB=gb$ID DA=da$ID DB=db$ID
PIN=/sys/fs/bpf/sbench-$ID
XDPDIR_EXISTED=0
[ -d /sys/fs/bpf/xdp ] && XDPDIR_EXISTED=1
XF_LOADED=0
WORK=$(mktemp -d /tmp/sbench-work.XXXXXX)
# Work on a copy of the CLI (it embeds the BPF objects): a rebuild of build/
# during the run must not change what is measured half way.
cp "$SLUICE" "$WORK/sluice"
SLUICE=$WORK/sluice
SLUICE_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- bpf lib nf cmd 2>/dev/null || SLUICE_REV="$SLUICE_REV+local changes"
SLUICE_REV="$SLUICE_REV, build/sluice of $(stat -c %y "$ROOT/build/sluice" | cut -d. -f1)"

ing() { nsenter --net="/run/netns/$NSG" "$@"; }
ind() { nsenter --net="/run/netns/$NSD" "$@"; }

cleanup() {
	set +e
	if [ "$XF_LOADED" = 1 ]; then ind xdp-filter unload "$DB" >/dev/null 2>&1; fi
	if [ -e "/run/netns/$NSD" ]; then
		ind "$SLUICE" reset >/dev/null 2>&1
		ip netns del "$NSD" 2>/dev/null
	fi
	[ -e "/run/netns/$NSG" ] && ip netns del "$NSG" 2>/dev/null
	[ -e "/run/netns/$NSK" ] && ip netns del "$NSK" 2>/dev/null
	rm -rf "$PIN" "$WORK"
	[ "$XDPDIR_EXISTED" = 0 ] && rmdir /sys/fs/bpf/xdp 2>/dev/null
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "topology $NSG -> $NSD (id $ID)"
ip netns add "$NSG"
ip netns add "$NSD"
mkdir -p "$PIN/a" "$PIN/b"
ing sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ind sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
for p in "$GA:$DA" "$GB:$DB"; do
	g=${p%:*} d=${p#*:}
	ip link add "$g" netns "$NSG" address 02:00:00:00:00:01 type veth \
		peer name "$d" netns "$NSD" address 02:00:00:00:00:02
	ing ip link set "$g" up
	ind ip link set "$d" up
done
ind ip link set lo up
ind ip addr add 10.77.0.2/16 dev "$DB"
ind ip addr add fd00:77::2/64 dev "$DB" nodad
ind ip route add 10.78.0.0/16 dev "$DB"
ind ip neigh replace 10.77.0.1 lladdr 02:00:00:00:00:01 dev "$DB" nud permanent
# The sink of the forwarding scenarios.
NSK=sbsnk-$ID DC=dc$ID KC=kc$ID
ip netns add "$NSK"
ink() { nsenter --net="/run/netns/$NSK" "$@"; }
ip link add "$DC" netns "$NSD" address 02:00:00:00:00:03 type veth \
	peer name "$KC" netns "$NSK" address 02:00:00:00:00:04
ind ip link set "$DC" up
ink ip link set "$KC" up
ind ip addr add 10.88.0.2/24 dev "$DC"
ind ip neigh replace 10.88.0.1 lladdr 02:00:00:00:00:04 dev "$DC" nud permanent
ind ip route add 10.90.0.0/16 via 10.88.0.1 dev "$DC"
ind ip route add 10.99.0.0/16 via 10.88.0.1 dev "$DC"
ind sysctl -qw net.ipv4.ip_forward=1

# Threaded NAPI needs sysfs of the DUT namespace: mount it in a private mount
# namespace (nsenter --net keeps the host's /sys).
set_threaded() {
	ind unshare -m sh -c "mount -t sysfs sysfs /sys && echo 1 > /sys/class/net/$1/threaded"
}

# PIDs of the NAPI threads of DEV ("napi/DEV-ID", comm cut at 15 chars).
napi_pids() {
	local p c out=()
	for p in /proc/[0-9]*; do
		c=$(cat "$p/comm" 2>/dev/null) || continue
		[[ "$c" == "napi/$1-"* ]] && out+=("${p#/proc/}")
	done
	echo "${out[@]}"
}

# Makes DEV's NAPI threaded and pins it; sets NAPI_<A|B> to the PIDs.
setup_napi() {
	local dev=$1 var=$2 pids i
	set_threaded "$dev"
	for i in $(seq 50); do
		pids=$(napi_pids "$dev")
		[ -n "$pids" ] && break
		sleep 0.1
	done
	[ -n "$pids" ] || die "no NAPI thread for $dev"
	for i in $pids; do
		taskset -pc "$RX_CPU" "$i" >/dev/null
		renice -n -20 -p "$i" >/dev/null
	done
	printf -v "$var" '%s' "$pids"
}

schedstat_ns() {
	local s=0 p v
	for p in $1; do
		v=$(cut -d' ' -f1 "/proc/$p/schedstat" 2>/dev/null || echo 0)
		s=$((s + v))
	done
	echo "$s"
}

# steal and total jiffies of RX_CPU
cpu_jiffies() {
	awk -v c="cpu$RX_CPU" '$1 == c { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t }' /proc/stat
}

udp_seen() { # UDP datagrams that reached the UDP layer of the DUT namespace
	ind awk '/^Udp:/ && $2 ~ /^[0-9]/ { print $2 + $3 + $4; exit }' /proc/net/snmp
}

ind "$SB" attach -i "$DA" -P drop -m "$PIN/a"
setup_napi "$DA" NAPI_A
# The sink counts and drops in its own NAPI thread: its CPU time is not the
# DUT's (only DB's thread is measured). It runs on GEN_CPU at the
# generator's priority: on RX_CPU it would take cache and CPU from DB's
# thread, and at a lower priority the busy generator or DB's thread starve
# it, its ring fills, and the DUT's transmissions are dropped uncounted.
mkdir -p "$PIN/k"
ink "$SB" attach -i "$KC" -P drop -m "$PIN/k"
ink unshare -m sh -c "mount -t sysfs sysfs /sys && echo 1 > /sys/class/net/$KC/threaded"
for i in $(seq 50); do
	KPIDS=$(napi_pids "$KC")
	[ -n "$KPIDS" ] && break
	sleep 0.1
done
[ -n "$KPIDS" ] || die "no NAPI thread for $KC"
for i in $KPIDS; do
	taskset -pc "$GEN_CPU" "$i" >/dev/null
	renice -n -20 -p "$i" >/dev/null
done

# ---- systems: load, count, unload ---------------------------------------
SYS=""      # system currently loaded on DB
GEN_ARGS="" # generator options of its scenario (destinations, packet type)
GEN_FLOWS="" # flows of its scenario (default FLOWS)
GEN_SEED=0  # 1: a fresh generator seed each slice (new flows every slice)
SC=""       # its scenario
LOADED_N=0

# Systems of the forwarding scenarios: counted = packets the sink received.
FWD_SYSTEMS=" xdp-fwd fwd-plain sluice-obs sluice-fm sluice-http sluice-router sluice-router-obs sluice-lb sluice-lb-rt ipt-dnat nft-numgen sluice-ctnat nf-ctnat "
is_fwd() { [[ "$FWD_SYSTEMS" == *" $1 "* ]]; }
# Drops counted by sluice's instances (0 when none is loaded).
sluice_drops() {
	ind "$SLUICE" -j nf list 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    d = []
print(sum(i["dropped"] for i in d))'
}

# Prints "counted dropped" for the system on DB.
count_b() {
	if is_fwd "$SYS"; then
		local d=0
		[[ "$SYS" == sluice-* ]] && d=$(sluice_drops)
		echo "$("$SB" count "$PIN/k/cnt") $d"
		return
	fi
	case "$SYS" in
	sluice | sluice-ipt)
		if [ "$SC" = chain ]; then
			# Every packet must traverse all K instances: counted = the
			# fewest packets any instance saw (the last one's), dropped =
			# drops of all instances (only the last one may drop).
			ind "$SLUICE" -j nf list | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(min(i["packets"] for i in d) if d else 0, sum(i["dropped"] for i in d))'
		else
			ind "$SLUICE" -j nf list | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(i["packets"] for i in d), sum(i["dropped"] for i in d))'
		fi
		;;
	xdp-parse)
		local c
		c=$("$SB" count "$PIN/b/cnt")
		echo "$c $c"
		;;
	xdp-filter)
		ind xdp-filter status | awk '/XDP_DROP/ { d = $2 } /XDP_PASS/ { p = $2 }
			/XDP_ABORTED/ { a = $2 } END { print d + p + a, d }'
		;;
	iptables-raw | iptables-input | iptables-legacy | ipset)
		local cmd=iptables-nft table=raw chain=PREROUTING
		[ "$SYS" = iptables-legacy ] && cmd=iptables-legacy
		[ "$SYS" = iptables-input ] && table=filter chain=INPUT
		echo "$("$SB" count "$PIN/b/cnt") $(ind "$cmd" -t "$table" -nvxL "$chain" 2>/dev/null |
			awk 'NR == 1 && /policy DROP/ { s += $5 } NR > 2 && $3 == "DROP" { s += $1 } END { print s + 0 }')"
		;;
	nft-chain | nft-set)
		echo "$("$SB" count "$PIN/b/cnt") $(ind nft list table inet sbench |
			awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") s += $(i + 1) } END { print s + 0 }')"
		;;
	*) die "count_b: $SYS" ;;
	esac
}

unload_b() {
	set +e
	case "$SYS" in
	"") ;;
	sluice | sluice-*) ind "$SLUICE" reset >/dev/null ;;
	ipt-dnat | nf-ctnat)
		ind iptables-nft -t nat -F; ind iptables-nft -t nat -X; ind nft flush ruleset ;;
	nft-numgen) ind nft delete table ip sbench ;;
	xdp-filter) ind xdp-filter unload "$DB" >/dev/null 2>&1; XF_LOADED=0 ;;
	iptables-raw | iptables-input | ipset)
		ind iptables-nft -t raw -F; ind iptables-nft -t raw -P PREROUTING ACCEPT
		ind iptables-nft -t filter -F; ind iptables-nft -t filter -P INPUT ACCEPT
		ind nft flush ruleset
		[ "$SYS" = ipset ] && ind ipset destroy sbench
		;;
	iptables-legacy)
		ind iptables-legacy -t raw -F; ind iptables-legacy -t raw -P PREROUTING ACCEPT ;;
	nft-chain | nft-set) ind nft delete table inet sbench ;;
	esac
	ind ip link set "$DB" xdp off 2>/dev/null
	# Flows NATed by netfilter must not outlive their system.
	ind conntrack -F >/dev/null 2>&1
	SYS="" SC="" GEN_ARGS="" GEN_FLOWS="" GEN_SEED=0
	set -e
}

# load_b SYSTEM SCENARIO N: returns non-zero (with a reason in LOAD_ERR) when
# the system cannot be loaded in LOAD_TIMEOUT seconds.
LOAD_ERR=""
load_b() {
	local sys=$1 sc=$2 n=$3 f=$WORK/rules t0 rc=0
	unload_b
	LOAD_ERR=""
	if [ "$sc" = chain ]; then
		[ "$sys" = sluice ] || { LOAD_ERR="scenario chain is for sluice only"; return 1; }
	elif [ "$sys" != xdp-parse ] && [ "$sys" != xdp-fwd ] && [ "$sc" != ctnat ] && [ "$sc" != obs ]; then
		# sluice-lb-rt loads the sluice-lb file; lb-new the lb services.
		timeout "$LOAD_TIMEOUT" "$RULES" "${sys/#sluice-lb-rt/sluice-lb}" "${sc%-new}" "$n" >"$f" 2>"$WORK/err" || {
			LOAD_ERR=$(tail -1 "$WORK/err"); return 1; }
	fi
	case "$sc" in
	lb) GEN_ARGS="--dst 10.95.1.0 --ndst $n -d 80" ;;
	lb-new) GEN_ARGS="--dst 10.95.1.0 --ndst $n -d 80" GEN_FLOWS=$LBNEW_FLOWS GEN_SEED=1 ;;
	ctnat) GEN_ARGS="--dst 10.99.0.2" ;;
	# UDP to port 80, so that httpmon has nothing to parse. (TCP SYN
	# forwarding was once seen costing tens of microseconds a packet; with
	# OBS_GEN_EXTRA="-p tcp4" on 2026-11-22 fwd-plain took 833 ns a SYN,
	# in line with UDP: not reproduced.)
	obs) GEN_ARGS="-d 80 --dst 10.99.0.2 ${OBS_GEN_EXTRA:-}" ;;
	*) GEN_ARGS="" ;;
	esac
	t0=$(date +%s.%N)
	case "$sys" in
	sluice)
		if [ "$sc" = chain ]; then
			load_chain "$n" || rc=$?
		else
			timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" "$SLUICE" firewall load "$DB" "$f" >/dev/null || rc=$?
		fi
		;;
	sluice-ipt)
		timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" "$SLUICE" iptables import --dev "$DB" "$f" >/dev/null || rc=$?
		;;
	fwd-plain)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b" || rc=$?
		;;
	# The floor of every XDP forwarder on this test bed: MAC rewrite and
	# DEVMAP redirect to DC, no parsing, no lookup (any forwarding scenario).
	xdp-fwd)
		ind "$SB" attach -i "$DB" -P fwd -o "$DC" -m "$PIN/b" || rc=$?
		;;
	sluice-obs)
		# Flow monitor on XDP ingress, HTTP parsing (port 80) at TC
		# ingress of the same port: both on the forwarding path.
		{ ind "$SLUICE" flowmon attach "$DB" --hook ingress >/dev/null &&
		  ind "$SLUICE" httpmon attach "$DB" --port 80 >/dev/null; } || rc=$?
		;;
	# The obs scenario's parts, to tell their costs apart: the flow
	# monitor alone; the HTTP monitor alone (with fwd-plain's counting
	# XDP program, which gives the veth its NAPI).
	sluice-fm)
		ind "$SLUICE" flowmon attach "$DB" --hook ingress >/dev/null || rc=$?
		;;
	sluice-http)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b" &&
		  ind "$SLUICE" httpmon attach "$DB" --port 80 >/dev/null || rc=$?
		;;
	# On sluice's own forwarding path: the router NF (XDP redirect to the
	# sink's side) alone, and behind the flow monitor with the HTTP
	# monitor at TC (which redirected packets never reach).
	sluice-router)
		ind "$SLUICE" router attach "$DB" >/dev/null || rc=$?
		;;
	sluice-router-obs)
		{ ind "$SLUICE" flowmon attach "$DB" --hook ingress >/dev/null &&
		  ind "$SLUICE" httpmon attach "$DB" --port 80 >/dev/null &&
		  ind "$SLUICE" router attach "$DB" >/dev/null; } || rc=$?
		;;
	sluice-lb | sluice-lb-rt)
		# The LB rewrites and forwards its NAT packets itself (FIB
		# lookup, XDP redirect to DC: lb forward on); the router
		# forwards the rest. sluice-lb-rt: the router forwards all.
		{ ind "$SLUICE" lb attach "$DB" >/dev/null &&
		  timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" "$SLUICE" lb restore "$f" >/dev/null &&
		  { [ "$sys" = sluice-lb-rt ] || ind "$SLUICE" lb forward on >/dev/null; } &&
		  ind "$SLUICE" router attach "$DB" >/dev/null; } || rc=$?
		;;
	ipt-dnat)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b"
		timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" iptables-nft-restore "$f" || rc=$?
		;;
	nft-numgen)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b"
		timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" nft -f "$f" || rc=$?
		;;
	sluice-ctnat)
		# Connection tracking where packets enter, masquerade on the way
		# out (as the nf-ctnat peer does with netfilter), on the fast path
		# (docs/nat.md): conntrack, nat, router on the XDP ingress of both
		# interfaces; the NAT translates what the router forwards.
		{ ind "$SLUICE" conntrack attach "$DB" >/dev/null &&
		  ind "$SLUICE" conntrack attach "$DC" >/dev/null &&
		  ind "$SLUICE" nat add sbnat masquerade --out "$DC" >/dev/null &&
		  ind "$SLUICE" nat attach "$DB" >/dev/null &&
		  ind "$SLUICE" nat attach "$DC" >/dev/null &&
		  ind "$SLUICE" router attach "$DB" >/dev/null &&
		  ind "$SLUICE" router attach "$DC" >/dev/null; } || rc=$?
		;;
	nf-ctnat)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b"
		ind iptables-nft -t nat -A POSTROUTING -o "$DC" -j MASQUERADE || rc=$?
		;;
	xdp-parse)
		ind "$SB" attach -i "$DB" -P parse -m "$PIN/b" || rc=$?
		;;
	xdp-filter)
		if [ "$sc" = last ]; then
			ind xdp-filter load -m native -p allow "$DB" >/dev/null 2>&1 || rc=$?
		else
			ind xdp-filter load -m native -p deny "$DB" >/dev/null 2>&1 || rc=$?
		fi
		[ $rc -eq 0 ] && XF_LOADED=1
		[ $rc -eq 0 ] && { timeout "$LOAD_TIMEOUT" bpftool batch file "$f" >/dev/null || rc=$?; }
		;;
	iptables-raw | iptables-input)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b"
		timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" iptables-nft-restore "$f" || rc=$?
		;;
	iptables-legacy)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b"
		timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" iptables-legacy-restore "$f" || rc=$?
		;;
	ipset)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b"
		timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" ipset restore -f "$f" || rc=$?
		if [ $rc -eq 0 ]; then
			ind iptables-nft -t raw -A PREROUTING -m set --match-set sbench src \
				-p udp --dport 7777 -j DROP
			[ "$sc" = nomatch ] && ind iptables-nft -t raw -P PREROUTING DROP
		fi
		;;
	nft-chain | nft-set)
		ind "$SB" attach -i "$DB" -P pass -m "$PIN/b"
		timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" nft -f "$f" || rc=$?
		;;
	*) LOAD_ERR="unknown system"; return 1 ;;
	esac
	SYS=$sys SC=$sc
	LOAD_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	if [ $rc -ne 0 ]; then
		if [ $rc -eq 124 ]; then LOAD_ERR="load took more than ${LOAD_TIMEOUT} s"
		else LOAD_ERR="load failed (status $rc)"; fi
		unload_b
		return 1
	fi
	setup_napi "$DB" NAPI_B
}

# load_chain K: K firewall instances sbchain1..K on DB's ingress chain, in
# order; 1..K-1 hold CHAIN_RULES non-matching rules and accept, K holds them
# and then the rule that drops the traffic.
load_chain() {
	local k=$1 i names=() f
	for i in $(seq "$k"); do
		f=$WORK/chain$i
		if [ "$i" -lt "$k" ]; then "$RULES" sluice pass "$CHAIN_RULES" >"$f"
		else "$RULES" sluice last $((CHAIN_RULES + 1)) >"$f"; fi || return 1
		timeout "$LOAD_TIMEOUT" nsenter --net="/run/netns/$NSD" \
			"$SLUICE" firewall load "$DB" "$f" --name "sbchain$i" >/dev/null || return
		names+=("sbchain$i")
	done
	ind "$SLUICE" chain set "$DB" ingress "${names[@]}" >/dev/null || return
	# K instances, all on the chain, the dropping one last.
	i=$(ind "$SLUICE" -j nf list | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
	[ "$i" = "$k" ] || { log "chain K=$k: $i instances listed"; return 1; }
}

# ---- one slice ------------------------------------------------------------
# slice A|B: sends SLICE seconds of traffic to the device and prints
# "ns_per_pkt pps counted dropped frames steal_pct udp_delta"
count_a() { local c; c=$("$SB" count "$PIN/a/cnt"); echo "$c $c"; }

slice() {
	local which=$1 gdev pids c0 c1 d0 d1 s0 s1 j0 j1 u0 u1 out frames secs prev i
	local flows=$FLOWS seed=""
	if [ "$which" = A ]; then gdev=$GA pids=$NAPI_A; else gdev=$GB pids=$NAPI_B; fi
	if [ "$which" = B ]; then
		flows=${GEN_FLOWS:-$FLOWS}
		[ "$GEN_SEED" = 1 ] && seed="-S $((RANDOM * 32768 + RANDOM + 1))"
	fi
	read -r c0 d0 < <(count_$(echo "$which" | tr AB ab))
	s0=$(schedstat_ns "$pids")
	j0=$(cpu_jiffies)
	u0=$(udp_seen)
	if ! out=$(timeout -k 2 "$(awk -v s="$SLICE" 'BEGIN { print int(s) + 15 }')" \
		nsenter --net="/run/netns/$NSG" \
		"$SB" gen -i "$gdev" -s "$SLICE" -f "$flows" -c "$GEN_CPU" $GEN_ARGS $seed); then
		log "generator failed: $out"
		echo "-1 0 0 0 0 0 0"
		return 0
	fi
	frames=$(sed -n 's/.*frames=\([0-9]*\).*/\1/p' <<<"$out")
	secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$out")
	# Let the receiver drain its ring (slow peers take a while), bounded.
	prev=""
	for i in $(seq 100); do
		read -r c1 d1 < <(count_$(echo "$which" | tr AB ab))
		[ "$c1" = "$prev" ] && break
		prev=$c1
		sleep 0.05
	done
	s1=$(schedstat_ns "$pids")
	j1=$(cpu_jiffies)
	u1=$(udp_seen)
	awk -v c0="$c0" -v c1="$c1" -v d0="$d0" -v d1="$d1" -v s0="$s0" -v s1="$s1" \
	    -v j0="$j0" -v j1="$j1" -v secs="$secs" -v fr="$frames" -v u0="$u0" -v u1="$u1" 'BEGIN {
		split(j0, a, " "); split(j1, b, " ")
		n = c1 - c0; st = (b[2] > a[2]) ? 100 * (b[1] - a[1]) / (b[2] - a[2]) : 0
		printf "%.1f %.0f %d %d %d %.1f %d\n", (n > 0 ? (s1 - s0) / n : -1),
			n / secs, n, d1 - d0, fr, st, u1 - u0 }'
}

# ---- one configuration: PAIRS A/B pairs in A B B A order ---------------------
RAW=$OUT/raw.tsv
mkdir -p "$OUT"
printf 'system\tscenario\tn\tpair\tA_ns\tB_ns\tA_pps\tB_pps\tB_counted\tB_dropped\tframes\tsteal_pct\tudp_delta\tok\tsession\n' >"$RAW"
# session: this run (report.py takes the reference median per session, so
# that rows of a separate run can be appended to a raw.tsv).
SESSION="$(date -u +%Y%m%dT%H%M%SZ)-$ID"
STATUS=$OUT/status.tsv
printf 'system\tscenario\tn\tstatus\tload_s\n' >"$STATUS"
FAILS=0

run_config() {
	local sys=$1 sc=$2 n=$3 p ra rb ok
	log "$sys $sc N=$n: loading"
	if ! load_b "$sys" "$sc" "$n"; then
		log "$sys $sc N=$n: skipped: $LOAD_ERR"
		printf '%s\t%s\t%s\tskipped: %s\t\n' "$sys" "$sc" "$n" "$LOAD_ERR" >>"$STATUS"
		return 0
	fi
	printf '%s\t%s\t%s\tok\t%s\n' "$sys" "$sc" "$n" "$LOAD_SECS" >>"$STATUS"
	for p in $(seq "$PAIRS"); do
		if [ $((p % 2)) -eq 1 ]; then ra=$(slice A); rb=$(slice B)
		else rb=$(slice B); ra=$(slice A); fi
		read -r a_ns a_pps _ _ _ _ _ <<<"$ra"
		read -r b_ns b_pps b_n b_d fr st ud <<<"$rb"
		# The work happened: B counted packets, all were dropped, and
		# none reached the UDP layer.
		# Forwarding scenarios: the sink received packets, none
		# reached the DUT's UDP layer, sluice dropped none.
		ok=1
		[ "$b_n" -gt 0 ] || ok=0
		[ "$ud" -eq 0 ] || ok=0
		if is_fwd "$sys"; then
			[ "$b_d" -eq 0 ] || ok=0
		else
			[ "$b_d" -ge $((b_n - b_n / 1000 - 2)) ] && [ "$b_d" -le $((b_n + 2)) ] || ok=0
		fi
		[ "$ok" = 1 ] || { FAILS=$((FAILS + 1));
			log "  CHECK FAILED: counted=$b_n dropped=$b_d udp_delta=$ud"; }
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
			"$sys" "$sc" "$n" "$p" "$a_ns" "$b_ns" "$a_pps" "$b_pps" "$b_n" "$b_d" \
			"$fr" "$st" "$ud" "$ok" "$SESSION" >>"$RAW"
		log "  pair $p: A ${a_ns} ns/pkt, B ${b_ns} ns/pkt (B $((${b_pps%.*} / 1000)) kpps, counted $b_n, dropped $b_d, steal ${st}%)"
	done
}

T_START=$(date +%s)
for lim in $EXTRA_LIMITS; do run_config "$lim" last 1; done
for n in $SIZES; do
	for sys in $SYSTEMS; do run_config "$sys" last "$n"; done
	for sys in $NOMATCH_SYSTEMS; do run_config "$sys" nomatch "$n"; done
done
for k in $CHAIN_KS; do run_config sluice chain "$k"; done
# iptables import (issue #5): sluice-ipt and its peers at IPT_SIZES, except
# the configurations the loops above measured already.
for n in $IPT_SIZES; do
	for sys in $IPT_SYSTEMS; do
		[[ " $SIZES " == *" $n "* && " $SYSTEMS " == *" $sys "* ]] && continue
		run_config "$sys" last "$n"
	done
done
# Forwarding (issues #4 and #7): load balancing, conntrack + NAT, the
# flow monitor + HTTP parsing overhead.
for sys in $LB_SYSTEMS; do run_config "$sys" lb "$LB_SERVICES"; done
for sys in $LBNEW_SYSTEMS; do run_config "$sys" lb-new "$LB_SERVICES"; done
for sys in $CTNAT_SYSTEMS; do run_config "$sys" ctnat 1; done
for sys in $OBS_SYSTEMS; do run_config "$sys" obs 1; done
unload_b

# ---- BPF_PROG_RUN per-packet cost of the sluice XDP root + firewall --------
PR=$OUT/progrun.tsv
printf 'n\tpacket\tprogram\tverdict\tns_min\tns_median\tns_max\truns\trepeat\n' >"$PR"
for n in $PROGRUN_SIZES; do
	load_b sluice last "$n" || { log "progrun N=$n: $LOAD_ERR"; continue; }
	cookie=$(ind "$SB" netns-cookie)
	prog=/sys/fs/bpf/sluice/netns-$cookie/root_xdp
	for what in match:7777 nomatch:7778; do
		before=$(count_b | cut -d' ' -f1)
		ind "$SB" progrun -i "$DB" -P "$prog" --label sluice -n "$PROGRUN_REPEAT" \
			-r "$PROGRUN_RUNS" -d "${what#*:}" -c "$GEN_CPU" >"$WORK/pr"
		after=$(count_b | cut -d' ' -f1)
		expect=$((PROGRUN_REPEAT * PROGRUN_RUNS))
		if [ $((after - before)) -lt "$expect" ]; then
			log "progrun N=$n: sluice counted $((after - before)) runs, expected $expect"
			FAILS=$((FAILS + 1))
		fi
		while read -r line; do
			eval "$(tr ' ' '\n' <<<"$line" | sed 's/^/pr_/')"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "${what%%:*}" "$pr_prog" \
				"$pr_verdict" "$pr_ns_min" "$pr_ns_median" "$pr_ns_max" "$pr_runs" "$pr_repeat" >>"$PR"
			log "progrun N=$n ${what%%:*}: $line"
		done <"$WORK/pr"
	done
done
unload_b
T_END=$(date +%s)

# ---- report -------------------------------------------------------------------
CMD="bench/run.sh $MODE"
[ "$MODE" = full ] && CMD="make bench   (bench/run.sh full)"
[ "$MODE" = quick ] && CMD="make bench-quick   (bench/run.sh quick)"
python3 "$ROOT/bench/report.py" --out "$OUT" --mode "$MODE" --cmd "$CMD" \
	--settings "pairs=$PAIRS slice=${SLICE}s flows=$FLOWS gen_cpu=$GEN_CPU rx_cpu=$RX_CPU chain_rules=$CHAIN_RULES; sluice at commit $SLUICE_REV" \
	--elapsed $((T_END - T_START)) --chain-rules "$CHAIN_RULES" $([ "$MODE" = smoke ] && echo --no-plots)
log "results in $OUT (took $((T_END - T_START)) s)"
if [ "$FAILS" -ne 0 ]; then
	log "$FAILS checks failed"
	exit 1
fi
exit 0
