#!/bin/bash
# run.sh: measure srvexample against the minimal fork-per-connection server.
#
# usage: bench/run.sh [-k] [-b bindir] [-c concurrencies] [-H held]
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
# reference with srvexample's per-child duties added one by one), holds
# -H idle connections at once, and writes results.dat, results-runs.dat,
# bench.png and RESULTS.md into outdir (default: this script's
# directory).  Clients all come from 127.0.0.1, which /etc/hosts names,
# so "resolve yes" never leaves the machine.

set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
BINDIR=$HERE
OUTDIR=$HERE
SECS=2
RUNS=5
CONCS="1 8 64"
HELD=10000
PROFILE_CONNS=3000
KEEP=0
WORK=
SRVEXAMPLE=
SRVUSER=()
declare -A PID PORT LAUNCHED
LOADPID=
TWRESTORE=0
SOMAXRESTORE=

# Print usage and exit non-zero.
usage() {
	echo "usage: $PROG [-k] [-b bindir] [-c concurrencies] [-H held]" \
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
	local k
	if [ -n "$LOADPID" ]; then kill "$LOADPID" 2>/dev/null || true; fi
	for k in "${!PID[@]}"; do
		kill "${PID[$k]}" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ "$TWRESTORE" = 1 ]; then
		echo 0 >/proc/sys/net/ipv4/tcp_tw_reuse || true
	fi
	if [ -n "$SOMAXRESTORE" ]; then
		echo "$SOMAXRESTORE" >/proc/sys/net/core/somaxconn || true
	fi
	if [ -n "$WORK" ] && [ "$KEEP" = 0 ]; then
		rm -rf "$WORK"
	elif [ -n "$WORK" ]; then
		say "work files kept in $WORK"
	fi
}

# Parse the command line.
parse_args() {
	local opt
	while getopts "b:c:H:ko:p:r:s:" opt; do
		case $opt in
		b) BINDIR=$(cd "$OPTARG" && pwd) ;;
		c) CONCS=$OPTARG ;;
		H) HELD=$OPTARG ;;
		k) KEEP=1 ;;
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
	[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "-r: not a count: $RUNS"
	[[ $HELD =~ ^[0-9]+$ ]] || die "-H: not a count: $HELD"
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
	need=$((HELD + 1024))
	if [ "$(ulimit -n)" -lt "$need" ]; then
		ulimit -Hn "$need" 2>/dev/null || true
		ulimit -n "$need" 2>/dev/null ||
		    say "cannot raise open files to $need: -H may fail"
	fi
	if [ "$(cat /proc/sys/kernel/pid_max)" -lt $((HELD + 4096)) ]; then
		say "kernel.pid_max is below $((HELD + 4096)): -H may fail"
	fi
	check_tw_reuse
	check_somaxconn
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/srvexample-bench.XXXXXX")
}

# Let the held test's connections all wait in the accept queue: where fork
# is slow, a queue of 4096 overflows while the server is still forking, and
# the connections the kernel drops then are the machine's limit, not the
# server's.
check_somaxconn() {
	local f=/proc/sys/net/core/somaxconn old
	[ "$HELD" -gt 0 ] && [ -r "$f" ] || return 0
	old=$(cat "$f")
	[ "$old" -lt "$HELD" ] || return 0
	if echo "$HELD" >"$f" 2>/dev/null; then
		SOMAXRESTORE=$old
		say "set net.core.somaxconn=$HELD for the run"
	else
		say "net.core.somaxconn is $old: -H may lose connections"
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
	heldsrv) CMD=("${srv[@]}" -o "max-children=$HELD" \
	    -o "backlog=$((HELD > 65535 ? 65535 : HELD))" \
	    -o max-per-source=0 -o timeout=120) ;;
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

# Wait up to $2 s for the "holding" line of loadgen in file $1.
wait_holding() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -q '^loadgen: holding' "$1" && return 0
		kill -0 "$LOADPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Wait until server $1 has $2 children or their count stops growing for 5 s.
wait_children() {
	local pid=$1 want=$2 n last=-1 still=0 i
	for ((i = 0; i < 600; i++)); do
		n=$(children "$pid" | wc -w)
		[ "$n" -ge "$want" ] && break
		if [ "$n" -eq "$last" ]; then
			still=$((still + 1))
			[ "$still" -ge 50 ] && break
		else
			still=0
		fi
		last=$n
		sleep 0.1
	done
}

# Hold HELD idle connections to a fresh server kind $1, measure, then answer.
held_test() {
	local kind=$1 pid kids n priv rss avail0 avail1 out kv
	local ok=0 errs=0 wrong=0 secs=0 p99=0
	start_server "$kind"
	pid=${PID[$kind]}
	avail0=$(mem_available)
	"$BINDIR/loadgen" -H "$HELD" -w 100 127.0.0.1 "${PORT[$kind]}" \
	    >"$WORK/$kind.out" 2>"$WORK/$kind.err" &
	LOADPID=$!
	wait_holding "$WORK/$kind.err" 130 || say "$kind: loadgen did not hold"
	wait_children "$pid" "$HELD"
	kids=$(children "$pid")
	n=$(echo "$kids" | wc -w)
	# shellcheck disable=SC2086 # a list of pids
	priv=$(private_kib $kids)
	rss=$(rss_kib "$pid")
	avail1=$(mem_available)
	kill -USR1 "$LOADPID" 2>/dev/null || true
	wait "$LOADPID" || true
	LOADPID=
	out=$(cat "$WORK/$kind.out")
	for kv in $out; do
		case $kv in
		ok=*) ok=${kv#*=} ;;
		errors=*) errs=${kv#*=} ;;
		wrong=*) wrong=${kv#*=} ;;
		answer_secs=*) secs=${kv#*=} ;;
		p99_us=*) p99=${kv#*=} ;;
		esac
	done
	say "$kind: $n children, $priv KiB private, parent $rss KiB; $out"
	grep '^loadgen: errors' "$WORK/$kind.err" >&2 || true
	echo "$kind $HELD $n $ok $errs $wrong $priv $rss" \
	    "$(((avail0 - avail1) / 1024)) $secs $p99" >>"$WORK/held.txt"
	stop_server "$kind"
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
# included, over PROFILE_CONNS connections at concurrency 8.  perf stat
# starts with its counters off and counts only while the load runs, so
# start-up and shutdown are left out.  Appends "kind faults cpu_us failed"
# to profile.txt: the first two per connection, then the connections that
# got no right answer (a row that counted failures is marked as such).
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
	awk -F, -v k="$kind" -v n="$PROFILE_CONNS" -v f="$failed" '
	    $3 == "page-faults" { pf = $1 }
	    $3 == "task-clock" { ms = $1 }
	    END { printf "%s %.1f %.0f %d\n", k, pf / n, ms * 1000 / n, f }' \
	    "$out" >>"$WORK/profile.txt"
	say "$kind: $(tail -1 "$WORK/profile.txt" | cut -d' ' -f2-)" \
	    "(faults, CPU us per connection, failed connections)"
}

# Print the per-connection cost table from profile.txt.
profile_table() {
	local k pf us failed ref name
	ref=$(awk '$1 == "ref" { print $3 }' "$WORK/profile.txt")
	echo "| server | page faults | CPU time (µs) | CPU / reference's |"
	echo "|---|---:|---:|---:|"
	while read -r k pf us failed; do
		name=$(label "$k")
		[ "$failed" -eq 0 ] || name="$name ($failed failed)"
		echo "| $name | $pf | $us | $(ratio "${ref:--}" "$us") |"
	done <"$WORK/profile.txt"
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

# Print the held-connections table.
held_table() {
	local k held n ok errs wrong priv rss drop secs p99
	echo "| server | held | children | answered ok | errors | wrong |" \
	    "children's private memory | per child | parent RSS |" \
	    "MemAvailable drop | answer time | p99 |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	while read -r k held n ok errs wrong priv rss drop secs p99; do
		echo "| $(label "${k#held}") | $held | $n | $ok | $errs |" \
		    "$wrong | $((priv / 1024)) MiB |" \
		    "$((n > 0 ? priv / n : 0)) KiB | $rss KiB | $drop MiB |" \
		    "$secs s | $((p99 / 1000)) ms |"
	done <"$WORK/held.txt"
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
		if [ -s "$WORK/held.txt" ]; then
			echo "$HELD idle connections held at once (srvexample:" \
			    "\`max-children $HELD\`, \`backlog $HELD\`," \
			    "\`max-per-source 0\`, \`timeout 120\`; the" \
			    "reference listens with SOMAXCONN), then all answered:"
			echo
			held_table
			echo
		fi
		if [ -s "$WORK/profile.txt" ]; then
			echo "Cost per connection: the server and its children" \
			    "together, counted by \`perf stat\` (page-faults," \
			    "task-clock) over $PROFILE_CONNS connections at" \
			    "concurrency 8, start-up and shutdown left out:"
			echo
			profile_table
			echo
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
	[ -x "$BINDIR/ladder" ] && LADDER="step0 step1 step2 step3 step4 step5 step6"
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
	: >"$WORK/profile.txt"
	if [ "$PROFILE_CONNS" -gt 0 ] && perf_works; then
		for k in ref $LADDER srv srvnc srvnr; do
			profile_kind "$k"
		done
	elif [ "$PROFILE_CONNS" -gt 0 ]; then
		say "perf missing or not allowed (apt-get install linux-perf):" \
		    "no cost per connection"
	fi
	: >"$WORK/held.txt"
	if [ "$HELD" -gt 0 ]; then
		held_test heldref
		held_test heldsrv
	fi
	write_dat
	plot
	write_results
	cat "$OUTDIR/RESULTS.md"
}

main "$@"
