#!/bin/bash
# run.sh: measure srvexample against the minimal fork-per-connection server.
#
# usage: bench/run.sh [-kq] [-b bindir] [-c concurrencies] [-H held-levels]
#                     [-o outdir] [-p conns] [-r runs] [-s seconds]
#                     SRVEXAMPLE_BINARY
#
# Builds nothing: expects loadgen and refserver (and optionally iterserver
# and ladder) in bindir (default: this script's directory).  Starts each
# server on a free loopback port, waits for its "ready:" line, then runs
# loadgen against them in turn (reference, srvexample, srvexample
# resolve=no, iterative, and again, so drift hits them alike) at each
# concurrency, keeps the median of the runs, measures memory, counts page
# faults and CPU time per connection with perf stat when it can (-p
# connections, 0 for none; also for each step of the ladder, the
# reference with srvexample's per-child duties added one by one).
#
# The held-load series: for each of the -H levels (a list, default
# "0 1000 5000 10000 30000"), the reference and srvexample each get that
# many idle clients held (each one a live child), then new clients at
# concurrency 8 run against them in turn, -r times; it reports new clients
# per second, the parent's CPU per new client (/proc/PID/schedstat) and the
# memory of a held child, and at the end asks on every held client and
# counts the answers.  As root it raises kernel.pid_max, kernel.threads-max
# and net.core.somaxconn for the run when they are too low, and restores
# them after.
#
# -q is the quick mode (a few seconds, for the tests): one run of 0.5 s at
# concurrency 8, 200 connections for the cost table, no ladder, held levels
# 0 and 100 in holders of 50.
#
# Writes results.dat, results-runs.dat, held.dat, held-runs.dat, bench.png,
# held.png and RESULTS.md into outdir (default: this script's directory).
# Clients of the first part all come from 127.0.0.1, which /etc/hosts
# names, so "resolve yes" never leaves the machine; the held series runs
# srvexample with "resolve no".

set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
BINDIR=$HERE
OUTDIR=$HERE
SECS=2
RUNS=3
CONCS="1 8 64"
LEVELS="0 1000 5000 10000 30000"
# idle clients per holder process: far below the hard RLIMIT_NOFILE that
# caps one process (20,000 on some hosts, not raisable without
# CAP_SYS_RESOURCE), and about one accept queue (SOMAXCONN) at a time
HOLD_CHUNK=4000
# held clients spread over 127.0.0.1-127.0.0.254: 30,000 connections to one
# port from one address would need more ports than the ephemeral range has
HOLD_SOURCES=254
PROFILE_CONNS=3000
QUICK=0
KEEP=0
WORK=
SRVEXAMPLE=
SRVUSER=()
declare -A PID PORT LAUNCHED HOLDERS SYSCTL_OLD
LEVEL=0
TWRESTORE=0
NOTES=()

# Print usage and exit non-zero.
usage() {
	echo "usage: $PROG [-kq] [-b bindir] [-c concurrencies] [-H held-levels]" \
	    "[-o outdir] [-p conns] [-r runs] [-s seconds]" \
	    "SRVEXAMPLE_BINARY" >&2
	exit 1
}

# Print an error and exit.
die() {
	echo "$PROG: $*" >&2
	exit 1
}

# Print a progress message on stderr.
say() {
	echo "$PROG: $*" >&2
}

# Stop everything this script started and remove the work directory.
cleanup() {
	local k p
	for k in "${!HOLDERS[@]}"; do
		for p in ${HOLDERS[$k]}; do
			kill "$p" 2>/dev/null || true
		done
	done
	for k in "${!PID[@]}"; do
		kill "${PID[$k]}" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ "$TWRESTORE" = 1 ]; then
		echo 0 >/proc/sys/net/ipv4/tcp_tw_reuse || true
	fi
	for k in "${!SYSCTL_OLD[@]}"; do
		echo "${SYSCTL_OLD[$k]}" >"/proc/sys/${k//.//}" || true
		say "restored $k=${SYSCTL_OLD[$k]}"
	done
	if [ -n "$WORK" ] && [ "$KEEP" = 0 ]; then
		rm -rf "$WORK"
	elif [ -n "$WORK" ]; then
		say "work files kept in $WORK"
	fi
}

# Parse the command line.
parse_args() {
	local opt
	while getopts "b:c:H:ko:p:qr:s:" opt; do
		case $opt in
		b) BINDIR=$(cd "$OPTARG" && pwd) ;;
		c) CONCS=$OPTARG ;;
		H) LEVELS=$OPTARG ;;
		k) KEEP=1 ;;
		q) QUICK=1 ;;
		o) mkdir -p "$OPTARG" && OUTDIR=$(cd "$OPTARG" && pwd) ;;
		p) PROFILE_CONNS=$OPTARG ;;
		r) RUNS=$OPTARG ;;
		s) SECS=$OPTARG ;;
		*) usage ;;
		esac
	done
	shift $((OPTIND - 1))
	[ $# -eq 1 ] || usage
	SRVEXAMPLE=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
	if [ "$QUICK" = 1 ]; then
		CONCS=8 RUNS=1 SECS=0.5 PROFILE_CONNS=200
		LEVELS="0 100" HOLD_CHUNK=50
	fi
	[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "-r: not a count: $RUNS"
	[[ $LEVELS =~ ^[0-9]+( [0-9]+)*$ ]] ||
	    die "-H: not a list of counts: $LEVELS"
	[[ $PROFILE_CONNS =~ ^[0-9]+$ ]] ||
	    die "-p: not a count: $PROFILE_CONNS"
	[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ ]] || die "-s: not seconds: $SECS"
}

# Check the binaries and the system limits; make the work directory.
setup() {
	local f need
	for f in loadgen refserver; do
		[ -x "$BINDIR/$f" ] || die "$BINDIR/$f missing: run make bench"
	done
	[ -x "$SRVEXAMPLE" ] || die "$SRVEXAMPLE: not an executable"
	command -v gnuplot >/dev/null ||
	    say "gnuplot missing (apt-get install gnuplot-nox): no plot"
	if [ "$(id -u)" = 0 ]; then
		# srvexample refuses to serve as root: it needs a user
		if id srvexample >/dev/null 2>&1; then
			SRVUSER=(-u srvexample)
		else
			SRVUSER=(-u nobody)
		fi
	fi
	check_tw_reuse
	check_held_limits
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/srvexample-bench.XXXXXX")
}

# Add a note (its arguments, joined) to the held series' section.
note() {
	NOTES+=("$*")
	say "$*"
}

# Print the largest of the held levels.
max_level() {
	local l max=0
	for l in $LEVELS; do
		[ "$l" -le "$max" ] || max=$l
	done
	echo "$max"
}

# Make room for the held series: both servers hold the largest level at
# once, each held client a process, next to the tasks the machine runs
# already and some to spare.  A holder process takes HOLD_CHUNK
# descriptors, so its hard RLIMIT_NOFILE and fs.nr_open need no raising.
check_held_limits() {
	local max need tasks
	max=$(max_level)
	[ "$max" -gt 0 ] || return 0
	tasks=$(awk '{ split($4, t, "/"); print t[2] }' /proc/loadavg)
	need=$((2 * max + tasks + 8192))
	sysctl_at_least kernel.pid_max "$need"
	sysctl_at_least kernel.threads-max "$need"
	# both servers listen with 4096 (the reference's SOMAXCONN)
	sysctl_at_least net.core.somaxconn 4096
	[ "$(ulimit -Hn)" -gt $((HOLD_CHUNK + 64)) ] ||
	    die "the hard limit on open files ($(ulimit -Hn)) is below" \
	    "a holder's $HOLD_CHUNK connections"
}

# Raise sysctl $1 to at least $2 for the run (when allowed); cleanup
# restores it.
sysctl_at_least() {
	local f=/proc/sys/${1//.//} old
	[ -r "$f" ] || return 0
	old=$(cat "$f")
	[ "$old" -lt "$2" ] || return 0
	if echo "$2" >"$f" 2>/dev/null; then
		SYSCTL_OLD[$1]=$old
		say "set $1=$2 (was $old) for the run"
		note "The run raised $1 from $old to $2 and restored it after."
	else
		say "$1 is $old, below $2: the held series may stop short"
		note "$1 was $old, below the $2 the held series wants," \
		    "and could not be raised (not root)."
	fi
}

# Let loopback clients reuse ports in TIME_WAIT (clients close first here).
check_tw_reuse() {
	local f=/proc/sys/net/ipv4/tcp_tw_reuse
	[ -r "$f" ] && [ "$(cat "$f")" = 0 ] || return 0
	if echo 2 >"$f" 2>/dev/null; then
		TWRESTORE=1
		say "set net.ipv4.tcp_tw_reuse=2 (loopback only) for the run"
	else
		say "net.ipv4.tcp_tw_reuse is 0: expect addrnotavail errors"
	fi
}

# Print a free TCP port on loopback, below the ephemeral range.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		if ! command -v ss >/dev/null ||
		    [ -z "$(ss -Htln "sport = :$p")" ]; then
			echo "$p"
			return
		fi
	done
}

# Set CMD to the command line of server kind $1 listening on port $2.
server_cmd() {
	local srv=("$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 -p "$2"
	    -o log=stderr "${SRVUSER[@]}")
	case $1 in
	ref)	CMD=("$BINDIR/refserver" "$2") ;;
	iter)	CMD=("$BINDIR/iterserver" "$2") ;;
	# one client address for all: allow the highest concurrency
	srv)	CMD=("${srv[@]}" -o max-per-source=128) ;;
	srvnr)	CMD=("${srv[@]}" -o max-per-source=128 -o resolve=no) ;;
	# a lookup in every child, as for clients that never come back
	srvnc)	CMD=("${srv[@]}" -o max-per-source=128 -o resolve-cache=0) ;;
	# the reference plus srvexample's per-child duties up to step N
	step[0-6]) CMD=("$BINDIR/ladder" "$2" "${1#step}") ;;
	heldref) CMD=("$BINDIR/refserver" "$2") ;;
	# room for LEVEL held and 8 new clients, from HOLD_SOURCES
	# addresses: per-source accounting stays on; the backlog of the
	# reference; no held client times out during a level
	heldsrv) CMD=("${srv[@]}" -o resolve=no \
	    -o "max-children=$((LEVEL + 64))" -o max-per-source=256 \
	    -o backlog=4096 -o timeout=1800) ;;
	*)	die "unknown server kind $1" ;;
	esac
}

# Wait up to 10 s for the "ready:" line in log $2 of process $1; print its pid.
wait_ready() {
	local i line
	for ((i = 0; i < 100; i++)); do
		line=$(grep -m1 '^ready: ' "$2" 2>/dev/null) || line=
		if [ -n "$line" ]; then
			if [[ $line =~ pid\ ([0-9]+) ]]; then
				echo "${BASH_REMATCH[1]}"
			else
				echo "$1"
			fi
			return 0
		fi
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Start server kind $1 on a free port, under the command that follows if
# any (its log is then KIND.wrapped.log); set PID[$1] (the server's, from
# its "ready:" line), LAUNCHED[$1] (the process started) and PORT[$1].
start_server() {
	local kind=$1 log=$WORK/$1.log try port pid
	shift
	[ $# -eq 0 ] || log=$WORK/$kind.wrapped.log
	for ((try = 0; try < 5; try++)); do
		port=$(free_port)
		server_cmd "$kind" "$port"
		"$@" "${CMD[@]}" </dev/null >/dev/null 2>"$log" &
		pid=$!
		PID[$kind]=$pid
		LAUNCHED[$kind]=$pid
		if pid=$(wait_ready "$pid" "$log"); then
			PID[$kind]=$pid
			PORT[$kind]=$port
			return 0
		fi
		stop_server "$kind"
		grep -qi 'in use' "$log" || break
	done
	cat "$log" >&2
	die "$kind (${CMD[*]}) did not start"
}

# Stop server kind $1 and wait for what was started for it.
stop_server() {
	local pid=${PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	wait "${LAUNCHED[$1]:-$pid}" 2>/dev/null || true
	unset "PID[$1]" "LAUNCHED[$1]"
}

# Print the pids of the children of process $1.
children() {
	if [ -r "/proc/$1/task/$1/children" ]; then
		cat "/proc/$1/task/$1/children" 2>/dev/null || true
	else
		pgrep -P "$1" || true
	fi
}

# Wait up to 10 s until process $1 has no children left.
wait_idle() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -z "$(children "$1")" ] && return 0
		sleep 0.1
	done
	say "pid $1 still has children after 10 s"
}

# Print the resident set size of process $1 in KiB.
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Print the total private memory (clean + dirty) of the given pids in KiB.
private_kib() {
	local p files=()
	for p in "$@"; do
		files+=("/proc/$p/smaps_rollup")
	done
	[ ${#files[@]} -gt 0 ] || { echo 0; return; }
	awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s + 0 }' \
	    "${files[@]}" 2>/dev/null || true
}

# Print MemAvailable in KiB.
mem_available() {
	awk '/^MemAvailable:/ { print $2 }' /proc/meminfo
}

# Hold one silent connection to kind $1; print its child's private KiB.
idle_child_kib() {
	local kind=$1 pid=${PID[$1]} fd i kids=
	exec {fd}<>"/dev/tcp/127.0.0.1/${PORT[$kind]}"
	for ((i = 0; i < 50; i++)); do
		kids=$(children "$pid")
		[ -n "$kids" ] && break
		sleep 0.1
	done
	sleep 0.5	# let the child finish its setup (log, sandbox, lookup)
	# shellcheck disable=SC2086 # one pid expected, word splitting wanted
	private_kib $kids
	exec {fd}>&-
	wait_idle "$pid"
}

# Run loadgen at concurrency $2 against kind $1; append a row to runs.
load_run() {
	local kind=$1 c=$2 run=$3 out kv cps=0 p50=0 p99=0 max=0 errs=0 wrong=0
	out=$("$BINDIR/loadgen" -c "$c" -d "$SECS" 127.0.0.1 "${PORT[$kind]}" \
	    2>>"$WORK/loadgen.err") || true
	for kv in $out; do
		case $kv in
		cps=*) cps=${kv#*=} ;;
		p50_us=*) p50=${kv#*=} ;;
		p99_us=*) p99=${kv#*=} ;;
		max_us=*) max=${kv#*=} ;;
		errors=*) errs=${kv#*=} ;;
		wrong=*) wrong=${kv#*=} ;;
		esac
	done
	echo "$kind $c $run $cps $p50 $p99 $max $errs $wrong" >>"$RUNSDAT"
	say "$(printf '%-6s c=%-3s run %s/%s: %s' "$kind" "$c" "$run" \
	    "$RUNS" "$out")"
	wait_idle "${PID[$kind]}"
}

# Warm the servers up, then run each concurrency RUNS times, rotating the order.
load_all() {
	local k c r i kinds
	read -r -a kinds <<<"$KINDS"
	for k in $KINDS; do
		"$BINDIR/loadgen" -c 8 -n 1000 127.0.0.1 "${PORT[$k]}" \
		    >/dev/null 2>>"$WORK/loadgen.err" || true
		wait_idle "${PID[$k]}"
	done
	echo "# kind concurrency run cps p50_us p99_us max_us errors wrong" \
	    >"$RUNSDAT"
	for c in $CONCS; do
		for ((r = 1; r <= RUNS; r++)); do
			for ((i = 0; i < ${#kinds[@]}; i++)); do
				k=${kinds[(i + r - 1) % ${#kinds[@]}]}
				load_run "$k" "$c" "$r"
			done
		done
	done
	if [ -s "$WORK/loadgen.err" ]; then
		say "loadgen reported:"
		sort "$WORK/loadgen.err" | uniq -c >&2
	fi
}

# Print the number of children of process $1.
nchildren() {
	children "$1" | wc -w
}

# Wait until server $1 has $2 children or their count stops growing for 5 s
# (or 60 s pass).
wait_children() {
	local pid=$1 want=$2 n last=-1 still=0 i
	for ((i = 0; i < 600; i++)); do
		n=$(nchildren "$pid")
		[ "$n" -ge "$want" ] && return 0
		if [ "$n" -eq "$last" ]; then
			still=$((still + 1))
			[ "$still" -ge 50 ] && return 1
		else
			still=0
		fi
		last=$n
		sleep 0.1
	done
	return 1
}

# Wait up to 10 s until server $1 is back to at most $2 children.
wait_settled() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(nchildren "$1")" -le "$2" ] && return 0
		sleep 0.05
	done
	say "pid $1 still has more than $2 children after 10 s"
}

# Wait up to $3 s for holder $2 to write its "holding" line into file $1.
wait_holding() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qs '^loadgen: holding' "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Hold $2 idle clients to server kind $1: holders of HOLD_CHUNK each, one
# after the other, each once the server has a child for every client held
# before.  Sets REACHED[$1] to the children alive; where a limit stops the
# count short, says so in NOTES.
hold_clients() {
	local kind=$1 want=$2 pid=${PID[$1]} held=0 n h hp
	HOLDERS[$kind]=
	while [ "$held" -lt "$want" ]; do
		n=$((want - held > HOLD_CHUNK ? HOLD_CHUNK : want - held))
		h=$WORK/hold.$kind.$held
		"$BINDIR/loadgen" -H "$n" -S "$HOLD_SOURCES" -w 3600 \
		    127.0.0.1 "${PORT[$kind]}" >"$h.out" 2>"$h.err" &
		hp=$!
		HOLDERS[$kind]+=" $hp"
		if ! wait_holding "$h.err" "$hp" 130; then
			note "$(label "${kind#held}") at $want held: a holder" \
			    "stopped: $(tr '\n' ' ' <"$h.err")"
			break
		fi
		if grep -q '^loadgen: errors' "$h.err"; then
			note "$(label "${kind#held}") at $want held:" \
			    "$(grep -h '^loadgen: ' "$h.err" | tr '\n' ' ')"
		fi
		held=$((held + n))
		if ! wait_children "$pid" "$held"; then
			note "$(label "${kind#held}") at $want held: its children" \
			    "stopped at $(nchildren "$pid") of $held held."
			break
		fi
	done
	REACHED[$kind]=$(nchildren "$pid")
	say "$kind: $want held: ${REACHED[$kind]} children"
}

# Ask on every client held to kind $1 at once and wait for the holders;
# sets ANSWERED[$1] to the right answers they got.
release_clients() {
	local kind=$1 p f kv ok=0
	for p in ${HOLDERS[$kind]}; do
		kill -USR1 "$p" 2>/dev/null || true
	done
	for p in ${HOLDERS[$kind]}; do
		wait "$p" || true
	done
	HOLDERS[$kind]=
	for f in "$WORK"/hold."$kind".*.out; do
		[ -e "$f" ] || continue
		for kv in $(<"$f"); do
			case $kv in ok=*) ok=$((ok + ${kv#*=})) ;; esac
		done
	done
	rm -f "$WORK"/hold."$kind".*
	ANSWERED[$kind]=$ok
}

# Print the mean PSS and RSS in KiB of up to 8 children of process $1,
# picked across its list of children.
child_mem() {
	local kids files=() n step i
	read -r -a kids <<<"$(children "$1")"
	n=${#kids[@]}
	step=$((n > 8 ? n / 8 : 1))
	for ((i = 0; i < n && ${#files[@]} < 8; i += step)); do
		files+=("/proc/${kids[i]}/smaps_rollup")
	done
	[ ${#files[@]} -gt 0 ] || { echo "- -"; return; }
	awk '/^Rss:/ { r += $2; n++ } /^Pss:/ { p += $2 }
	    END { if (n) printf "%d %d\n", p / n, r / n; else print "- -" }' \
	    "${files[@]}" 2>/dev/null || true
}

# Print the time process $1 has spent on a CPU so far, in ns.
cpu_ns() {
	local run _
	read -r run _ <"/proc/$1/schedstat"
	echo "$run"
}

# Run new clients at concurrency 8 against kind $1 while $2 are held, for
# run $3; append "held kind run cps parent_us errors wrong" to HELDRUNS.  The
# parent's CPU counts until its children are back to the held ones, so it
# includes reaping the last new client.
held_run() {
	local kind=$1 level=$2 pid=${PID[$1]} t0 out kv conns=0 cps=0
	local errs=0 wrong=0 us
	t0=$(cpu_ns "$pid")
	out=$("$BINDIR/loadgen" -c 8 -d "$SECS" 127.0.0.1 "${PORT[$kind]}" \
	    2>>"$WORK/loadgen.err") || true
	wait_settled "$pid" "${REACHED[$kind]}"
	for kv in $out; do
		case $kv in
		conns=*) conns=${kv#*=} ;;
		cps=*) cps=${kv#*=} ;;
		errors=*) errs=${kv#*=} ;;
		wrong=*) wrong=${kv#*=} ;;
		esac
	done
	us=$(awk -v a="$t0" -v b="$(cpu_ns "$pid")" -v n="$conns" \
	    'BEGIN { if (n > 0) printf "%.1f\n", (b - a) / n / 1000; else print "-" }')
	echo "$level $kind $3 $cps $us $errs $wrong" >>"$HELDRUNS"
	say "$(printf '%-7s held=%-5s run %s/%s: %s parent_us=%s' "$kind" \
	    "$level" "$3" "$RUNS" "$out" "$us")"
}

# Enough memory for both servers to hold $1 clients (about 100 KiB each
# with the kernel's share, 200 counted), and 1 GiB to spare?
room_for() {
	[ "$(mem_available)" -gt $((2 * $1 * 200 + 1048576)) ]
}

# One level of the held series: hold $1 idle clients to a fresh reference
# and a fresh srvexample, measure new clients against both in turn, then
# ask on every held client; append a line to held.txt.
held_level() {
	local level=$1 kinds=(heldref heldsrv) k r i avail mem
	declare -gA REACHED ANSWERED SYS MEMC
	LEVEL=$level
	for k in "${kinds[@]}"; do
		start_server "$k"
	done
	for k in "${kinds[@]}"; do
		avail=$(mem_available)
		hold_clients "$k" "$level"
		SYS[$k]=-
		[ "${REACHED[$k]}" -eq 0 ] ||
		    SYS[$k]=$(((avail - $(mem_available)) / REACHED[$k]))
		MEMC[$k]=$(child_mem "${PID[$k]}")
	done
	for k in "${kinds[@]}"; do
		"$BINDIR/loadgen" -c 8 -n 200 127.0.0.1 "${PORT[$k]}" \
		    >/dev/null 2>>"$WORK/loadgen.err" || true
		wait_settled "${PID[$k]}" "${REACHED[$k]}"
	done
	for ((r = 1; r <= RUNS; r++)); do
		for ((i = 0; i < 2; i++)); do
			held_run "${kinds[(i + r + 1) % 2]}" "$level" "$r"
		done
	done
	for k in "${kinds[@]}"; do
		release_clients "$k"
		stop_server "$k"
		mem=${MEMC[$k]}
		say "$k: $level held: ${ANSWERED[$k]} answered; child PSS, RSS" \
		    "${mem% *}, ${mem#* } KiB; MemAvailable drop" \
		    "${SYS[$k]} KiB per child"
	done
	echo "$level ${REACHED[heldref]} ${REACHED[heldsrv]}" \
	    "${ANSWERED[heldref]} ${ANSWERED[heldsrv]} ${MEMC[heldref]}" \
	    "${MEMC[heldsrv]} ${SYS[heldref]} ${SYS[heldsrv]}" >>"$WORK/held.txt"
}

# The held-load series over every level that fits in memory.
held_series() {
	local l
	HELDRUNS=$OUTDIR/held-runs.dat
	echo "# held kind run cps parent_us_per_client errors wrong" >"$HELDRUNS"
	: >"$WORK/held.txt"
	for l in $LEVELS; do
		if ! room_for "$l"; then
			note "$l held not run: MemAvailable" \
			    "$(($(mem_available) / 1024)) MiB is too little."
			continue
		fi
		held_level "$l"
	done
}

# Print the median of field $3 (4 cps, 5 parent us) over the runs of held
# kind $2 at level $1.
held_median() {
	awk -v l="$1" -v k="$2" -v f="$3" '$1 == l && $2 == k { print $f }' \
	    "$HELDRUNS" | sort -n | awk '{ v[NR] = $1 }
	    END {
		if (NR == 0) print "-"
		else if (NR % 2) print v[(NR + 1) / 2]
		else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
	    }'
}

# Write held.dat: per level, the medians and the memory of both servers.
write_held_dat() {
	local l rr rs ar as pr rr_ ps rs_ sr ss
	{
		echo "# held ref_reached srv_reached ref_cps srv_cps ratio" \
		    "ref_parent_us srv_parent_us ref_pss_kib ref_rss_kib" \
		    "srv_pss_kib srv_rss_kib ref_sys_kib srv_sys_kib" \
		    "ref_answered srv_answered"
		while read -r l rr rs ar as pr rr_ ps rs_ sr ss; do
			echo "$l $rr $rs $(held_median "$l" heldref 4)" \
			    "$(held_median "$l" heldsrv 4)" \
			    "$(ratio "$(held_median "$l" heldref 4)" \
			    "$(held_median "$l" heldsrv 4)")" \
			    "$(held_median "$l" heldref 5)" \
			    "$(held_median "$l" heldsrv 5)" \
			    "$pr $rr_ $ps $rs_ $sr $ss $ar $as"
		done <"$WORK/held.txt"
	} >"$OUTDIR/held.dat"
}

# Print the held-load table from held.dat.
held_table() {
	local l rr rs rc sc q ru su rp rrss sp srss rsys ssys ar as name
	echo "| idle clients held | srvexample, new clients/s |" \
	    "reference, new clients/s | ratio | parent µs per new client," \
	    "srvexample | reference | KiB per held child, srvexample" \
	    "(PSS / RSS / system) | reference | held clients answered," \
	    "srvexample | reference |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	while read -r l rr rs rc sc q ru su rp rrss sp srss rsys ssys ar as; do
		[ "$l" != "#" ] || continue
		name=$l
		[ "$rs" -ge "$l" ] || name="$name (srvexample $rs)"
		[ "$rr" -ge "$l" ] || name="$name (reference $rr)"
		echo "| $name | $sc | $rc | $q | $su | $ru |" \
		    "$sp / $srss / $ssys | $rp / $rrss / $rsys | $as | $ar |"
	done <"$OUTDIR/held.dat"
}

# Print the held series' section of RESULTS.md.
held_results() {
	local n
	echo "New clients at concurrency 8 (\`loadgen -c 8\`, $SECS s," \
	    "$RUNS runs alternating between the servers, medians; every" \
	    "run: held-runs.dat) while N idle clients are held, each one a" \
	    "live child: the reference (accept, fork, SIGCHLD ignored) and" \
	    "srvexample (\`resolve no\`, \`max-children\` N + 64," \
	    "\`max-per-source 256\`, \`backlog 4096\`, \`timeout 1800\`)" \
	    "hold the same N at the same time.  The held clients come from" \
	    "127.0.0.1-127.0.0.$HOLD_SOURCES, $HOLD_CHUNK per holder" \
	    "process.  The parent's CPU is its run time in" \
	    "/proc/PID/schedstat over a run (until its children are back" \
	    "to the held ones) divided by the clients served.  A held" \
	    "child's memory is the mean PSS and RSS of up to 8 of them" \
	    "(smaps_rollup); \"system\" is the drop of MemAvailable while" \
	    "that server's clients were being held, per child, the" \
	    "kernel's share included (other work on the machine moves it)." \
	    "Last, every held client sends its line and the right answers" \
	    "are counted."
	echo
	held_table
	echo
	held_baseline
	echo
	echo "Targets (issue 13):"
	echo
	held_targets
	for n in "${NOTES[@]}"; do
		echo "- $n"
	done
	echo
	echo "![new clients per second and the parent's CPU against" \
	    "idle clients held](held.png)"
	echo
}

# Print the target of issue 13 for the cost table and whether it holds.
cost_target() {
	local pf
	pf=$(profile_median srv 3)
	echo "Target (issue 13): srvexample's page faults per connection at" \
	    "most the 33 before the parent's rewrite: $pf," \
	    "$(verdict 'b <= 33' 0 "$pf")"
	echo
}

# Print the held series of issue 13, measured before the parent's rewrite.
held_baseline() {
	echo "Before the parent's rewrite (issue 13, the same kind of machine," \
	    "another day, \`max-children 12000\`):"
	echo
	echo "| idle clients held | srvexample, new clients/s |" \
	    "reference, new clients/s | ratio |"
	echo "|---:|---:|---:|---:|"
	echo "| 0 | 4,348 | 5,816 | 0.75 |"
	echo "| 3,000 | 1,706 | | |"
	echo "| 8,000 | 428 | 4,860 | 0.09 |"
	echo "| 9,000 | 292 | 4,748 | 0.06 |"
}

# Print the target of issue 13 for the held series and whether it holds.
held_targets() {
	local worst max reached answered
	worst=$(awk '!/^#/ && $6 != "-" { if (w == "" || $6 < w) w = $6 }
	    END { print (w == "") ? "-" : w }' "$OUTDIR/held.dat")
	echo "- srvexample/reference >= 0.8 at every held level: lowest" \
	    "$worst, $(verdict 'b >= 0.8' 0 "$worst")"
	max=$(max_level)
	read -r reached answered < <(awk -v m="$max" '$1 == m {
	    print $3, $16 }' "$OUTDIR/held.dat")
	echo "- $max held clients all answered by srvexample:" \
	    "${reached:-0} children, ${answered:-0} answered," \
	    "$(verdict 'a >= b && b > 0' "${answered:-0}" "$max")"
}

# Plot new clients per second and the parent's CPU against the clients held.
held_plot() {
	local dat=$OUTDIR/held.dat base=$WORK/held-baseline.dat
	command -v gnuplot >/dev/null || return 0
	[ -s "$dat" ] || return 0
	printf '%s\n' "# held srv_cps ref_cps (issue 13, before)" \
	    "0 4348 5816" "3000 1706 -" "8000 428 4860" "9000 292 4748" >"$base"
	gnuplot <<PLOT
set terminal pngcairo size 1100,500 font ",10"
set output "$OUTDIR/held.png"
set datafile missing "-"
set multiplot layout 1,2 title "new clients at concurrency 8 while idle clients are held, loopback, $(machine)"
set xlabel "idle clients held (each a live child)"
set grid
set key below
set style data linespoints
set linetype 1 lw 2 pt 7 ps 0.8
set linetype 2 lw 2 pt 5 ps 0.8
set linetype 3 lw 1 pt 6 ps 0.9 dt 2
set linetype 4 lw 1 pt 4 ps 0.9 dt 2
set ylabel "new clients per second (median)"
set yrange [0:*]
plot "$dat" using 1:4 title "reference fork server", \
    '' using 1:5 title "srvexample", \
    "$base" using 1:3 title "reference, before (issue 13)", \
    '' using 1:2 title "srvexample, before (issue 13)"
set ylabel "parent's CPU per new client, µs (median)"
plot "$dat" using 1:7 title "reference fork server", \
    '' using 1:8 title "srvexample"
unset multiplot
PLOT
}
# Tell whether perf(1) can count this user's software events.
perf_works() {
	command -v perf >/dev/null &&
	    perf stat -x, -e page-faults -o /dev/null true 2>/dev/null
}

# Send perf stat command $1 on descriptor $2; wait for its "ack" on $3.
perf_control() {
	local ack=
	echo "$1" >&"$2"
	read -r -t 10 ack <&"$3" || true
	[ "$ack" = ack ] || die "perf stat did not $1 its counters"
}

# Count the page faults and CPU time of server kind $1, its children
# included, over PROFILE_CONNS connections at concurrency 8, for run $2.
# perf stat starts with its counters off and counts only while the load
# runs, so start-up and shutdown are left out.  Appends "kind run faults
# cpu_us failed" to profile.txt: faults and CPU per connection, then the
# connections that got no right answer (a row that counted failures is
# marked as such).
profile_kind() {
	local kind=$1 out=$WORK/$1.perf cfd afd res kv failed=0
	rm -f "$WORK/perf.ctl" "$WORK/perf.ack"
	mkfifo "$WORK/perf.ctl" "$WORK/perf.ack"
	exec {cfd}<>"$WORK/perf.ctl" {afd}<>"$WORK/perf.ack"
	start_server "$kind" perf stat -D -1 --control "fd:$cfd,$afd" -x, \
	    -e page-faults,task-clock -o "$out" --
	perf_control enable "$cfd" "$afd"
	res=$("$BINDIR/loadgen" -c 8 -n "$PROFILE_CONNS" 127.0.0.1 \
	    "${PORT[$kind]}" 2>>"$WORK/loadgen.err") || true
	for kv in $res; do
		case $kv in
		errors=* | wrong=*) failed=$((failed + ${kv#*=})) ;;
		esac
	done
	wait_idle "${PID[$kind]}"
	perf_control disable "$cfd" "$afd"
	stop_server "$kind"		# perf stat writes $out as it exits
	exec {cfd}>&- {afd}>&-
	awk -F, -v k="$kind" -v r="$2" -v n="$PROFILE_CONNS" -v f="$failed" '
	    $3 == "page-faults" { pf = $1 }
	    $3 == "task-clock" { ms = $1 }
	    END { printf "%s %d %.1f %.0f %d\n", k, r, pf / n, ms * 1000 / n, f }' \
	    "$out" >>"$WORK/profile.txt"
	say "$kind run $2: $(tail -1 "$WORK/profile.txt" | cut -d' ' -f3-)" \
	    "(faults, CPU us per connection, failed connections)"
}

# Print the median of field $2 (3 faults, 4 CPU us) over the profile runs of
# kind $1.
profile_median() {
	awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$WORK/profile.txt" |
	    sort -n | awk '{ v[NR] = $1 }
	    END {
		if (NR == 0) print "-"
		else if (NR % 2) print v[(NR + 1) / 2]
		else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
	    }'
}

# Fill profile.txt: RUNS rounds of the cost of every kind, when perf counts.
profile_all() {
	local k r nc=srvnc
	: >"$WORK/profile.txt"
	[ "$PROFILE_CONNS" -gt 0 ] || return 0
	if ! perf_works; then
		say "perf missing or not allowed (apt-get install linux-perf):" \
		    "no cost per connection"
		return 0
	fi
	[ "$QUICK" = 0 ] || nc=
	for ((r = 1; r <= RUNS; r++)); do
		for k in ref $LADDER srv $nc srvnr; do
			profile_kind "$k" "$r"
		done
	done
}

# Print the per-connection cost table from profile.txt: the median of the
# runs of each kind, in the order they ran.
profile_table() {
	local k ref us failed name
	ref=$(profile_median ref 4)
	echo "| server | page faults | CPU time (µs) | CPU / reference's |"
	echo "|---|---:|---:|---:|"
	while read -r k; do
		name=$(label "$k")
		failed=$(awk -v k="$k" '$1 == k { s += $5 } END { print s + 0 }' \
		    "$WORK/profile.txt")
		[ "$failed" -eq 0 ] || name="$name ($failed failed)"
		us=$(profile_median "$k" 4)
		echo "| $name | $(profile_median "$k" 3) | $us |" \
		    "$(ratio "$ref" "$us") |"
	done < <(awk '!seen[$1]++ { print $1 }' "$WORK/profile.txt")
}

# Say what the ladder's steps are.
ladder_note() {
	echo "Steps 0-6 are bench/ladder: the reference with srvexample's" \
	    "per-child duties added one at a time, each step keeping the" \
	    "ones before it, so that the difference between two rows is" \
	    "what one duty costs per connection.  Where a CPU time follows" \
	    "the page faults, a child pays for each page of code it runs" \
	    "that no earlier call in that child has mapped."
	echo
}

# Print the median of field $3 over the runs of kind $1 at concurrency $2.
median() {
	awk -v k="$1" -v c="$2" -v f="$3" '$1 == k && $2 == c { print $f }' \
	    "$RUNSDAT" | sort -n | awk '{ v[NR] = $1 }
	    END {
		if (NR == 0) print "-"
		else if (NR % 2) print v[(NR + 1) / 2]
		else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
	    }'
}

# Print the sum of field $2 over all runs of kind $1.
total() {
	awk -v k="$1" -v f="$2" '$1 == k { s += $f } END { print s + 0 }' \
	    "$RUNSDAT"
}

# Print $2 / $1 with two decimals, or "-".
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "-" || b == "-" || a == 0) print "-"
		else printf "%.2f\n", b / a
	}'
}

# Write results.dat: the medians per concurrency, one server per column.
write_dat() {
	local c
	{
		echo "# concurrency ref_cps srv_cps srvnr_cps iter_cps" \
		    "ref_p99_us srv_p99_us srvnr_p99_us iter_p99_us"
		for c in $CONCS; do
			echo "$c $(median ref "$c" 4) $(median srv "$c" 4)" \
			    "$(median srvnr "$c" 4) $(median iter "$c" 4)" \
			    "$(median ref "$c" 6) $(median srv "$c" 6)" \
			    "$(median srvnr "$c" 6) $(median iter "$c" 6)"
		done
	} >"$OUTDIR/results.dat"
}

# Print a markdown table of field $1 (4 cps, 6 p99) for every concurrency.
table() {
	local f=$1 c r s n
	echo "| clients | reference | srvexample | ratio |" \
	    "srvexample resolve=no | ratio | iterative |"
	echo "|---:|---:|---:|---:|---:|---:|---:|"
	for c in $CONCS; do
		r=$(median ref "$c" "$f")
		s=$(median srv "$c" "$f")
		n=$(median srvnr "$c" "$f")
		echo "| $c | $r | $s | $(ratio "$r" "$s") | $n |" \
		    "$(ratio "$r" "$n") | $(median iter "$c" "$f") |"
	done
}

# Print "met" or "NOT met" for the awk condition $1 on a and b.
verdict() {
	awk -v a="$2" -v b="$3" "BEGIN {
		if (a == \"-\" || b == \"-\") print \"not measured\"
		else if ($1) print \"met\"; else print \"NOT met\"
	}"
}

# Print the targets of issue 6 and whether they hold.
targets() {
	local c r s last
	for c in $CONCS; do last=$c; done
	echo "Targets (issue 6), resolve yes:"
	echo
	for c in 8 64; do
		r=$(median ref "$c" 4)
		s=$(median srv "$c" 4)
		echo "- throughput at $c >= 0.9 x reference: $(ratio "$r" "$s")," \
		    "$(verdict 'b >= 0.9 * a' "$r" "$s")"
	done
	r=$(median ref "$last" 6)
	s=$(median srv "$last" 6)
	echo "- p99 at $last <= 1.2 x reference: $(ratio "$r" "$s")," \
	    "$(verdict 'b <= 1.2 * a' "$r" "$s")"
	echo "- parent RSS <= 2048 KiB: ${MEM[srv_rss1]} KiB," \
	    "$(verdict 'b <= 2048' 0 "${MEM[srv_rss1]}")"
	echo "- per-child private memory <= 256 KiB: ${MEM[srv_child]} KiB," \
	    "$(verdict 'b <= 256' 0 "${MEM[srv_child]}")"
}

# Print the memory table.
memory_table() {
	local k
	echo "| server | parent RSS at start (KiB) | parent RSS after load" \
	    "(KiB) | of which private (KiB) |" \
	    "private memory of an idle child (KiB) |"
	echo "|---|---:|---:|---:|---:|"
	for k in $KINDS; do
		echo "| $(label "$k") | ${MEM[${k}_rss0]} | ${MEM[${k}_rss1]} |" \
		    "${MEM[${k}_priv1]} | ${MEM[${k}_child]} |"
	done
}

# Print the display name of server kind $1.
label() {
	case $1 in
	ref) echo "reference (fork)" ;;
	srv) echo "srvexample" ;;
	srvnr) echo "srvexample resolve=no" ;;
	srvnc) echo "srvexample resolve-cache=0" ;;
	iter) echo "iterative" ;;
	step0) echo "step 0: the reference linked as srvexample" ;;
	step1) echo "step 1: + signal mask, close fds, alarm" ;;
	step2) echo "step 2: + clock at start and end" ;;
	step3) echo "step 3: + resource limits" ;;
	step4) echo "step 4: + inherited seccomp filter, SIGCHLD reaping" ;;
	step5) echo "step 5: + process title (setproctitle)" ;;
	step6) echo "step 6: + two log lines (vsnprintf)" ;;
	*) echo "$1" ;;
	esac
}

# Print how busy the CPUs are with other work, in percent, over one second.
cpu_busy() {
	local a b
	a=$(head -1 /proc/stat)
	sleep 1
	b=$(head -1 /proc/stat)
	echo "$a" "$b" | awk '{
		for (i = 2; i <= 9; i++) { t0 += $i; t1 += $(i + 11) }
		idle = ($16 + $17) - ($5 + $6)
		printf "%d\n", (t1 > t0) ? 100 - 100 * idle / (t1 - t0) : 0
	}'
}

# Print one line describing the machine.
machine() {
	local model
	model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "$(nproc) CPUs, ${model:-unknown CPU}, Linux $(uname -r)"
}

# Plot throughput and p99 against concurrency into bench.png.
plot() {
	local dat=$OUTDIR/results.dat iter=
	command -v gnuplot >/dev/null || return 0
	if [ -n "${PORT[iter]:-}" ]; then
		iter=", '' using 1:5 title 'iterative (no fork)'"
	fi
	gnuplot <<EOF
set terminal pngcairo size 1100,500 font ",10"
set output "$OUTDIR/bench.png"
set datafile missing "-"
set multiplot layout 1,2 title "srvexample vs minimal fork server, loopback, $(machine)"
set logscale x 2
set xrange [0.8:90]
set xtics ("1" 1, "8" 8, "64" 64)
set xlabel "concurrent clients"
set grid
set key below
set style data linespoints
set linetype 1 lw 2 pt 7 ps 0.8
set linetype 2 lw 2 pt 5 ps 0.8
set linetype 3 lw 2 pt 9 ps 0.9
set linetype 4 lw 2 pt 13 ps 0.9 dt 2
set ylabel "connections per second (median)"
set logscale y
plot "$dat" using 1:2 title "reference fork server", \
    '' using 1:3 title "srvexample", \
    '' using 1:4 title "srvexample resolve=no"$iter
set ylabel "p99 latency, ms (median)"
plot "$dat" using 1:(\$6/1000) title "reference fork server", \
    '' using 1:(\$7/1000) title "srvexample", \
    '' using 1:(\$8/1000) title "srvexample resolve=no"${iter//1:5/1:(\$9/1000)}
unset multiplot
EOF
}

# Print the errors and wrong replies of every server, when there are any.
error_notes() {
	local k e w
	for k in $KINDS; do
		e=$(total "$k" 8)
		w=$(total "$k" 9)
		if [ "$e" != 0 ] || [ "$w" != 0 ]; then
			echo "- $(label "$k"): $e errors, $w wrong replies" \
			    "over all runs"
		fi
	done
}

# Write RESULTS.md from the collected data.
write_results() {
	local version
	version=$("$SRVEXAMPLE" -V 2>/dev/null | head -1) || version=
	{
		echo "## Benchmark: ${version:-srvexample} against a minimal fork server"
		echo
		echo "Measured $(date -u +%Y-%m-%d) on $(machine), loopback," \
		    "by \`bench/run.sh\`: loadgen closed-loop clients" \
		    "(connect, send \`hello world\`, half-close, read the reply" \
		    "to EOF, verify, close), $RUNS alternating runs of" \
		    "$SECS s per server and concurrency, medians shown" \
		    "(every run: results-runs.dat)." \
		    "Other work kept the CPUs ${BUSY}% busy just before."
		echo "srvexample runs with its defaults${SRVUSER[1]:+ as user ${SRVUSER[1]}}," \
		    "logging to a file" \
		    "(\`-d -o log=stderr 2>file\`, $(wc -l <"$WORK/srv.log")" \
		    "lines written), and \`max-per-source 128\` because every" \
		    "client comes from 127.0.0.1.  For the same reason every" \
		    "child but the first in each \`resolve-cache\` period" \
		    "(60 s) takes its client's name from the parent's memory;" \
		    "the cost of a lookup in every child, as for clients" \
		    "that never come back, is the resolve-cache=0 row of the" \
		    "cost table (when perf can count)."
		echo
		echo "Connections per second:"
		echo
		table 4
		echo
		echo "p99 latency, connect to EOF (µs):"
		echo
		table 6
		echo
		echo "Memory:"
		echo
		memory_table
		echo
		if [ -s "$OUTDIR/held.dat" ]; then
			held_results
		fi
		if [ -s "$WORK/profile.txt" ]; then
			echo "Cost per connection: the server and its children" \
			    "together, counted by \`perf stat\` (page-faults," \
			    "task-clock) over $PROFILE_CONNS connections at" \
			    "concurrency 8, start-up and shutdown left out," \
			    "median of $RUNS runs (resolve yes unless named):"
			echo
			profile_table
			echo
			cost_target
			[ -z "$LADDER" ] || ladder_note
		fi
		error_notes
		targets
		echo
		echo "![throughput and p99 against concurrency](bench.png)"
	} >"$OUTDIR/RESULTS.md"
}

# Measure parent RSS (and the private part of it) now; $1 is the column
# suffix (0 before load, 1 after).
measure_rss() {
	local k
	for k in $KINDS; do
		MEM[${k}_rss$1]=$(rss_kib "${PID[$k]}")
		MEM[${k}_priv$1]=$(private_kib "${PID[$k]}")
	done
}

# Run the whole benchmark.
main() {
	parse_args "$@"
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	setup
	BUSY=$(cpu_busy)
	if [ "$BUSY" -gt 5 ]; then
		say "warning: the machine is ${BUSY}% busy with other work:" \
		    "results will be noisy"
	fi
	RUNSDAT=$OUTDIR/results-runs.dat
	KINDS="ref srv srvnr"
	[ -x "$BINDIR/iterserver" ] && KINDS="$KINDS iter"
	LADDER=
	[ -x "$BINDIR/ladder" ] && [ "$QUICK" = 0 ] &&
	    LADDER="step0 step1 step2 step3 step4 step5 step6"
	declare -gA MEM
	for k in $KINDS; do
		start_server "$k"
		say "$k: pid ${PID[$k]} port ${PORT[$k]}"
	done
	measure_rss 0
	load_all
	measure_rss 1
	for k in $KINDS; do
		[ "$k" = iter ] && MEM[iter_child]="-" && continue
		MEM[${k}_child]=$(idle_child_kib "$k")
	done
	for k in $KINDS; do
		stop_server "$k"
	done
	profile_all
	held_series
	write_dat
	write_held_dat
	plot
	held_plot
	write_results
	cat "$OUTDIR/RESULTS.md"
}

main "$@"
