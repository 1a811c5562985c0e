# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run.
# shellcheck disable=SC2154
# test_helper.bash: shared by every tests/*.bats file.  Load it with
#	load test_helper
# at the top of a .bats file.
#
# It starts the real daemon on 127.0.0.1 and a free port, waits for its
# `ready:` log line (never a fixed sleep), and always stops it again.  Every
# test runs by hand too:
#	SRVEXAMPLE=src/srvexample bats tests/
#
# Environment (all optional):
#	SRVEXAMPLE	the binary (default ../src/srvexample from this file)
#	CLIENT		the test client (default client.py next to this file)
#	SRVEXAMPLE_WRAPPER  words put before the binary by start_daemon, e.g.
#			"valgrind -q --error-exitcode=99" (must not fork itself)
#	PYTHON		python3 interpreter for client.py (default
#			/usr/bin/python3, else python3 from PATH)
#	LISTEN		address start_daemon listens on (default 127.0.0.1;
#			empty: no -l flag at all)
#	DAEMON_USER	user start_daemon passes with -u when run as root
#			(default nobody; empty: no -u flag)
#	DAEMON_FIXED_PORT  use this port instead of a free one (no retry)
#	DAEMON_PREFIX	(array) command words before the daemon, e.g.
#			(setpriv --reuid=nobody ...)
#	START_TIMEOUT	seconds start_daemon waits for `ready:` (default 10)
#
# API (kept stable; other .bats files use it):
#	common_setup / common_teardown	what the default setup/teardown do
#	free_port [ADDR]		a free TCP port on ADDR (127.0.0.1)
#	start_daemon [ARGS...]		sets PORT DAEMON_PID DAEMON_LOG
#	stop_daemon [SECONDS]		SIGTERM, bounded wait, SIGKILL; DAEMON_STATUS
#	signal_daemon SIG		send SIG to the daemon
#	wait_daemon_exit [SECONDS]	wait for it to exit; sets DAEMON_STATUS
#	wait_for_log REGEX [SECONDS]	grep -E on DAEMON_LOG until it matches
#	log_count REGEX			number of matching log lines
#	wait_until 'CONDITION' [SECONDS]  poll a shell condition
#	children_of PID / zombies_of PID  child pids (all / state Z)
#	pid_alive PID			exists and is not a zombie
#	proc_field PID N		field N of /proc/PID/stat (3 = state)
#	proc_status PID KEY		value of KEY: in /proc/PID/status
#	require_root / require_ipv6	skip with a reason
#	need COMMAND...		skip when a command is missing
#	track_pid PID			teardown stops PID (and checks it is gone)
#	client [ARGS...]		tests/client.py --port $PORT ARGS
#	client_bg FILE [ARGS...]	the same in the background; sets CLIENT_BG_PID
#	assert_bytes FILE ESCAPED	FILE holds exactly these bytes (cmp)
#	assert_serves [CLIENT-ARGS...]	a normal client still gets its answer
#	hold_client [CLIENT-ARGS...]	connect and hold; sets HOLD_PID HOLD_PORT
#	release_client [SECONDS]	let it send its data; sets HOLD_STATUS
#	child_for_port CLIENTPORT	the daemon child serving that client
#	socket_inode LPORT RPORT	inode of the established socket
#	daemon_stats			SIGUSR1, wait for and print the stats line
#	stats_value KEY			KEY=N from the last stats (or refusals) line
#	assert_stderr REGEX / refute_stderr REGEX  on $stderr of run --separate-stderr
#	assert_stderr_line TEXT		a line of $stderr is exactly TEXT
#	report_value KEY		KEY=V from a client report in $output/$stderr
#	float_test A OP B		decimal comparison, e.g. float_test "$t" '<' 2.5
#	copy_binary / procs_of_exe PATH	tell this test's processes from others
#	make_piddir			sets PIDDIR, writable by the daemon's user
#	start_detached PIDFILE [ARGS...]  start without -d; sets PORT DPID
#	make_world_tmpdir		sets WORLD_TMPDIR: a 0755 directory (removed
#					in teardown) that a dropped user can reach
#	hold NAME / release NAME [SECONDS]  hold_client by name (H_PID H_GO
#					H_OUT H_PORT [NAME])
#	bg NAME [ARGS...] / bg_wait NAME  background client by name (B_PID
#					B_OUT B_ERR B_STATUS [NAME])
#	nchildren / no_children [SECONDS]  count / wait for none of the
#					daemon's children
#	user_args			-u USER lines as start_daemon passes them
#	kill_job_children		stop what backgrounded subshell jobs run
#	as_owner PID COMMAND...		COMMAND with the real and effective ids of PID
#	proc_limit PID RESOURCE SOFT|HARD  a limit of PID (prlimit's number)
#	set_soft_limit PID RESOURCE VALUE  set PID's soft limit, keep the hard one

bats_require_minimum_version 1.5.0

# -- environment defaults ---------------------------------------------------

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRVEXAMPLE=${SRVEXAMPLE:-$TESTS_DIR/../src/srvexample}
export SRVEXAMPLE
CLIENT=${CLIENT:-$TESTS_DIR/client.py}
# The system interpreter is preferred: client.py needs only the standard
# library, and version-manager shims (pyenv) cost a fraction of a second each.
if [ -z "${PYTHON:-}" ]; then
	PYTHON=python3
	[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
fi
LISTEN=${LISTEN-127.0.0.1}
START_TIMEOUT=${START_TIMEOUT:-10}
declare -a DAEMON_PREFIX=()
DAEMON_PID=
DAEMON_LOG=
DAEMON_STATUS=
DAEMON_LOG_N=0
HOLD_N=0
declare -a SEEN_PROCS=()
declare -a ALLOWED_EXES=()
declare -a TRACKED_PIDS=()
declare -a WORLD_TMPDIRS=()
# Processes a teardown could not stop, shared by every run of the suite as the
# spiped tests do: while one of them lives, no further test starts.
LEFTOVERS=${TMPDIR:-/tmp}/srvexample-bats-leftovers.$(id -u)

# -- assertions: bats-support/bats-assert, else minimal stand-ins -----------

_load_assert_libs() {
	local lib
	for lib in bats-support bats-assert; do
		if declare -F bats_load_library_safe >/dev/null &&
		    bats_load_library_safe "$lib" 2>/dev/null; then
			continue
		fi
		if [ -f "/usr/lib/bats/$lib/load.bash" ]; then
			# shellcheck disable=SC1090
			source "/usr/lib/bats/$lib/load.bash" && continue
		fi
		return 1
	done
}

if ! _load_assert_libs; then
	# Just enough of bats-assert for these tests.
	fail() {
		printf '%s\n' "${1:-failed}" >&2
		return 1
	}
	assert_success() {
		[ "$status" -eq 0 ] || fail "expected success, got status $status: $output"
	}
	assert_failure() {
		[ "$status" -ne 0 ] || fail "expected failure, got status 0: $output"
	}
	assert_equal() {
		[ "$1" = "$2" ] || fail "expected '$2', got '$1'"
	}
	_match() { # MODE PATTERN TEXT
		case $1 in
		partial) [[ $3 == *"$2"* ]] ;;
		regexp) [[ $3 =~ $2 ]] ;;
		*) [ "$3" = "$2" ] ;;
		esac
	}
	_mode() { # parse --partial/--regexp into mode/rest
		mode=exact
		case $1 in
		--partial | -p) mode=partial ;;
		--regexp | -e) mode=regexp ;;
		*) return 1 ;;
		esac
	}
	assert_output() {
		local mode
		_mode "$1" && shift
		_match "$mode" "$1" "$output" || fail "output ($mode) '$1' not matched in: $output"
	}
	refute_output() {
		local mode
		_mode "$1" && shift
		! _match "$mode" "$1" "$output" || fail "output ($mode) '$1' unexpectedly matched: $output"
	}
	assert_line() {
		local mode l
		_mode "$1" && shift
		for l in "${lines[@]}"; do
			_match "$mode" "$1" "$l" && return 0
		done
		fail "no line ($mode) '$1' in: $output"
	}
	refute_line() {
		local mode l
		_mode "$1" && shift
		for l in "${lines[@]}"; do
			! _match "$mode" "$1" "$l" || fail "line ($mode) '$1' unexpectedly found: $l"
		done
	}
fi

# -- small process utilities ------------------------------------------------

# proc_field PID N: field N (1-based, as in proc(5)) of /proc/PID/stat.
proc_field() {
	local line rest
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
	rest=${line##*) }
	# shellcheck disable=SC2086
	set -- $rest "$2"
	local n=${!#}
	[ "$n" -ge 3 ] || return 1
	n=$((n - 2))
	printf '%s\n' "${!n}"
}

# proc_status PID KEY: the value of KEY: in /proc/PID/status (tabs kept).
proc_status() {
	local key val
	while IFS=: read -r key val; do
		if [ "$key" = "$2" ]; then
			val=${val#"${val%%[![:space:]]*}"}
			printf '%s\n' "$val"
			return 0
		fi
	done <"/proc/$1/status"
	return 1
}

# pid_alive PID: the process exists and is not a zombie (works across uids).
pid_alive() {
	local state
	[ -n "$1" ] || return 1
	state=$(proc_field "$1" 3) || return 1
	[ "$state" != Z ] && [ "$state" != X ]
}

# _proc_id PID: "pid:starttime", stable against pid reuse.
_proc_id() {
	local start
	start=$(proc_field "$1" 22) || return 1
	printf '%s:%s\n' "$1" "$start"
}

# _proc_id_alive ID: the process named by _proc_id is still alive.
_proc_id_alive() {
	local pid=${1%%:*}
	[ "$(_proc_id "$pid" 2>/dev/null)" = "$1" ] && pid_alive "$pid"
}

# _children_with_state PID STATE-REGEX: children of PID in a matching state.
_children_with_state() {
	local f line rest state ppid
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		rest=${line##*) }
		state=${rest%% *}
		rest=${rest#* }
		ppid=${rest%% *}
		if [ "$ppid" = "$1" ] && [[ $state =~ $2 ]]; then
			f=${f#/proc/}
			printf '%s\n' "${f%/stat}"
		fi
	done
}

# children_of PID: pids whose parent is PID (any state).
children_of() {
	_children_with_state "$1" '.'
}

# zombies_of PID: children of PID that are zombies.
zombies_of() {
	_children_with_state "$1" '^Z$'
}

# _now_ms: monotonic enough wall clock in milliseconds.
_now_ms() {
	local t=${EPOCHREALTIME//[!0-9]/}
	printf '%s\n' $((10#$t / 1000))
}

# _secs_to_ms SECONDS: "1.5" -> 1500.
_secs_to_ms() {
	local int=${1%%.*} frac=
	[[ $1 == *.* ]] && frac=${1#*.}
	frac=${frac}000
	printf '%s\n' $((10#${int:-0} * 1000 + 10#${frac:0:3}))
}

# _deadline_ms SECONDS: the time, in ms, a wait of SECONDS ends.  Waits are
# bounds that only a hang should reach, not measures of speed; under valgrind
# every process runs several times slower, so the bounds stretch by
# SRVEXAMPLE_WAIT_SCALE (default 4 there, 1 otherwise).
_deadline_ms() {
	local scale=${SRVEXAMPLE_WAIT_SCALE:-}
	if [ -z "$scale" ]; then
		scale=1
		[ "${SRVEXAMPLE_VALGRIND:-}" = 1 ] && scale=4
	fi
	printf '%s\n' $(($(_now_ms) + $(_secs_to_ms "$1") * scale))
}

# wait_until 'CONDITION' [SECONDS]: poll a shell condition (default 5 s).
wait_until() {
	local cond=$1 end
	end=$(_deadline_ms "${2:-5}")
	while :; do
		if eval "$cond"; then
			return 0
		fi
		if [ "$(_now_ms)" -ge "$end" ]; then
			echo "wait_until: still false after ${2:-5} s: $cond" >&2
			return 1
		fi
		sleep 0.02
	done
}

# require_root: skip unless uid 0.
require_root() {
	[ "$(id -u)" = 0 ] || skip "needs root"
}

# need COMMAND...: skip the test when a command is missing.
need() {
	local cmd
	for cmd; do
		command -v "$cmd" >/dev/null 2>&1 || skip "$cmd not installed"
	done
}

# sandbox_off: print why this build has no seccomp sandbox and succeed, or
# fail when it has one (a sanitizer build turns it off).
sandbox_off() {
	local f h=
	for f in "${top_builddir:-}/config.h" "$TESTS_DIR/../config.h"; do
		[ -f "$f" ] && h=$f && break
	done
	if [ -z "$h" ]; then
		echo "no config.h found (set top_builddir)"
	elif ! grep -q '^#define HAVE_SECCOMP 1' "$h"; then
		echo "built without seccomp"
	elif grep -q '^#define SANITIZERS 1' "$h"; then
		echo "sanitizer build: sandbox off"
	else
		return 1
	fi
}

# skip_under_sanitizers WHAT: skip a bound on CPU or memory in the
# ASan/UBSan build, whose runtime (shadow memory, its allocator) is what such
# a bound would then measure; make check runs it in the normal build.
skip_under_sanitizers() {
	local f
	for f in "${top_builddir:-}/config.h" "$TESTS_DIR/../config.h"; do
		if [ -f "$f" ] && grep -q '^#define SANITIZERS 1' "$f"; then
			skip "$1: not in the sanitizer build (make check runs it)"
		fi
	done
}

# skip_under_valgrind_load: skip a load test (hundreds of clients, or a
# deadline of seconds) under valgrind, whose children run tens of times
# slower on two cores: it measures valgrind's capacity, not memory errors.
# These tests run in make check and in the sanitizer build.
skip_under_valgrind_load() {
	[ -z "${SRVEXAMPLE_VALGRIND:-}" ] ||
	    skip "load test: not under valgrind (make check and the sanitizer build run it)"
}

# require_ipv6: skip unless ::1 can be bound.
require_ipv6() {
	"$PYTHON" -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' \
	    2>/dev/null || skip "no IPv6 loopback (::1) on this host"
}

# track_pid PID: teardown stops PID and checks that it is gone.
track_pid() {
	TRACKED_PIDS+=("$1")
	_allow_exe_of "$1"
	_seen "$1"
}

# _exe_of PID: the executable PID runs (empty when unknown).
_exe_of() {
	readlink "/proc/$1/exe" 2>/dev/null || true
}

# _allow_exe_of PID: processes running PID's executable may be remembered.
_allow_exe_of() {
	local exe
	exe=$(_exe_of "$1")
	[ -z "$exe" ] || ALLOWED_EXES+=("$exe")
}

# _seen PID: remember a process of this test for the leftover check (which
# kills it).  Only processes running the daemon's executable (or one that
# track_pid named) qualify, never init or this shell and its parents.
_seen() {
	local id exe ok=0 a
	case $1 in '' | 0 | 1 | "$$" | "$BASHPID" | "$PPID") return 0 ;; esac
	exe=$(_exe_of "$1")
	[ -n "$exe" ] || return 0
	for a in "$(readlink -f "$SRVEXAMPLE")" "${ALLOWED_EXES[@]}"; do
		[ "$exe" = "$a" ] && ok=1
	done
	[ "$ok" = 1 ] || return 0
	id=$(_proc_id "$1" 2>/dev/null) && SEEN_PROCS+=("$id")
	return 0
}

# make_world_tmpdir: sets WORLD_TMPDIR, a fresh 0755 directory outside the
# (0700) bats tree, so a daemon that dropped root can reach files in it.
make_world_tmpdir() {
	WORLD_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/srvexample-test.XXXXXX")
	chmod 755 "$WORLD_TMPDIR"
	WORLD_TMPDIRS+=("$WORLD_TMPDIR")
}

# -- ports and the daemon ---------------------------------------------------

# free_port [ADDR]: print a TCP port that is free on ADDR right now.
free_port() {
	local addr=${1:-127.0.0.1}
	case $addr in '' | '*') addr=127.0.0.1 ;; esac
	"$PYTHON" -c '
import socket, sys
a = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET)
s.bind((a, 0))
print(s.getsockname()[1])' "$addr"
}

# start_daemon [ARGS...]: run
#	$SRVEXAMPLE -d -f $CONF -l $LISTEN -p PORT [-u nobody] ARGS
# in the background and wait for its `ready:` line.  Retries with another
# port when the log says "Address already in use".  Exports PORT,
# DAEMON_PID and DAEMON_LOG; fails with the log when the daemon exits first.
start_daemon() {
	local tries=0 pid port log end
	local -a wrapper=() listen_args=() user_args=()
	if [ -n "$DAEMON_PID" ] && pid_alive "$DAEMON_PID"; then
		echo "start_daemon: daemon pid $DAEMON_PID of this test still runs" >&2
		return 1
	fi
	if [ ! -x "$SRVEXAMPLE" ]; then
		echo "start_daemon: no executable $SRVEXAMPLE (build it or set SRVEXAMPLE)" >&2
		return 1
	fi
	CONF=${CONF:-$BATS_TEST_TMPDIR/srvexample.conf}
	[ -e "$CONF" ] || : >"$CONF"
	read -ra wrapper <<<"${SRVEXAMPLE_WRAPPER:-}"
	[ -z "$LISTEN" ] || listen_args=(-l "$LISTEN")
	if [ "$(id -u)" = 0 ] && [ -n "${DAEMON_USER-nobody}" ]; then
		user_args=(-u "${DAEMON_USER:-nobody}")
	fi
	while :; do
		tries=$((tries + 1))
		port=${DAEMON_FIXED_PORT:-$(free_port "$LISTEN")}
		DAEMON_LOG_N=$((DAEMON_LOG_N + 1))
		log=$BATS_TEST_TMPDIR/daemon.log
		[ "$DAEMON_LOG_N" -eq 1 ] || log=$BATS_TEST_TMPDIR/daemon.$DAEMON_LOG_N.log
		"${DAEMON_PREFIX[@]}" "${wrapper[@]}" "$SRVEXAMPLE" -d -f "$CONF" \
		    "${listen_args[@]}" -p "$port" "${user_args[@]}" "$@" \
		    </dev/null >"$log" 2>&1 3>&- &
		pid=$!
		export PORT=$port DAEMON_PID=$pid DAEMON_LOG=$log
		end=$(_deadline_ms "$START_TIMEOUT")
		# A journal prefix (<N>, see logging.bats) may start the line.
		while ! grep -Eaq '^(<[0-7]>)?ready: ' "$log"; do
			if ! pid_alive "$pid"; then
				break
			fi
			if [ "$(_now_ms)" -ge "$end" ]; then
				echo "start_daemon: no 'ready:' line after $START_TIMEOUT s" >&2
				cat -v "$log" >&2
				return 1
			fi
			sleep 0.02
		done
		if pid_alive "$pid"; then
			# With SRVEXAMPLE_WRAPPER the executable is the wrapper's.
			_allow_exe_of "$pid"
			_seen "$pid"
			return 0
		fi
		DAEMON_STATUS=0
		wait "$pid" || DAEMON_STATUS=$?
		DAEMON_PID=
		if grep -aq 'Address already in use' "$log" &&
		    [ -z "${DAEMON_FIXED_PORT:-}" ] && [ "$tries" -lt 5 ]; then
			continue
		fi
		echo "start_daemon: daemon exited with status $DAEMON_STATUS before it was ready:" >&2
		cat -v "$log" >&2
		return 1
	done
}

# _remember_children PID: note the current children of PID.
_remember_children() {
	local c
	for c in $(children_of "$1"); do
		_seen "$c"
	done
}

# _any_seen_alive: a process remembered by _seen still runs.
_any_seen_alive() {
	local id
	for id in "${SEEN_PROCS[@]}"; do
		_proc_id_alive "$id" && return 0
	done
	return 1
}

# _wait_gone PID SECONDS: wait for PID to exit, remembering its children.
_wait_gone() {
	local end
	end=$(_deadline_ms "$2")
	while pid_alive "$1"; do
		_remember_children "$1"
		if [ "$(_now_ms)" -ge "$end" ]; then
			return 1
		fi
		sleep 0.02
	done
}

# signal_daemon SIG: send SIG (TERM, USR1, ...) to the daemon.
signal_daemon() {
	[ -n "$DAEMON_PID" ] || {
		echo "signal_daemon: no daemon" >&2
		return 1
	}
	_remember_children "$DAEMON_PID"
	kill -s "$1" "$DAEMON_PID"
}

# wait_daemon_exit [SECONDS]: wait (default 10 s) for the daemon to exit by
# itself; sets DAEMON_STATUS and clears DAEMON_PID.
wait_daemon_exit() {
	local pid=$DAEMON_PID
	[ -n "$pid" ] || {
		echo "wait_daemon_exit: no daemon" >&2
		return 1
	}
	if ! _wait_gone "$pid" "${1:-10}"; then
		echo "wait_daemon_exit: pid $pid still runs after ${1:-10} s" >&2
		return 1
	fi
	DAEMON_STATUS=0
	wait "$pid" 2>/dev/null || DAEMON_STATUS=$?
	DAEMON_PID=
}

# stop_daemon [SECONDS]: SIGTERM, wait (default 15 s), else SIGKILL (and
# fail); then kill any child of it still alive.  Sets DAEMON_STATUS.
stop_daemon() {
	local pid=$DAEMON_PID rc=0 id
	[ -n "$pid" ] || return 0
	_remember_children "$pid"
	kill -TERM "$pid" 2>/dev/null || true
	if ! _wait_gone "$pid" "${1:-15}"; then
		echo "stop_daemon: pid $pid still runs ${1:-15} s after SIGTERM: SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
		_wait_gone "$pid" 5 || true
		rc=1
	fi
	DAEMON_STATUS=0
	wait "$pid" 2>/dev/null || DAEMON_STATUS=$?
	DAEMON_PID=
	# Children must not outlive the parent (SPEC.md: terminated after grace);
	# allow a moment for one that was just finishing.
	wait_until '! _any_seen_alive' 2 2>/dev/null || true
	for id in "${SEEN_PROCS[@]}"; do
		if _proc_id_alive "$id"; then
			echo "stop_daemon: child ${id%%:*} outlived the daemon: SIGKILL" >&2
			kill -KILL "${id%%:*}" 2>/dev/null || true
			rc=1
		fi
	done
	return $rc
}

# wait_for_log REGEX [SECONDS]: wait (default 5 s) until a line of
# DAEMON_LOG matches the extended regex.
wait_for_log() {
	local end
	end=$(_deadline_ms "${2:-5}")
	until grep -Eaq -- "$1" "$DAEMON_LOG" 2>/dev/null; do
		if [ "$(_now_ms)" -ge "$end" ]; then
			echo "wait_for_log: no line matching /$1/ in $DAEMON_LOG after ${2:-5} s" >&2
			return 1
		fi
		sleep 0.02
	done
}

# log_count REGEX: how many lines of DAEMON_LOG match.
log_count() {
	grep -Eac -- "$1" "$DAEMON_LOG" 2>/dev/null || true
}

# daemon_stats: send SIGUSR1, wait for a new `stats:` line, print it.
daemon_stats() {
	local n
	n=$(log_count '^stats: ')
	signal_daemon USR1
	wait_until "[ \$(log_count '^stats: ') -gt $n ]" 5 || return 1
	grep -a '^stats: ' "$DAEMON_LOG" | tail -n 1
}

# stats_value KEY: KEY=N from the last stats or refusals line of DAEMON_LOG.
stats_value() {
	{
		grep -a '^stats: ' "$DAEMON_LOG" | tail -n 1
		grep -a '^refusals: ' "$DAEMON_LOG" | tail -n 1
	} | grep -Eo "(^| )$1=[0-9]+" | head -n 1 | sed 's/.*=//'
}

# make_piddir: sets PIDDIR, a directory the daemon's user can write (so that it
# can remove its pidfile after dropping root).
make_piddir() {
	if [ "$(id -u)" = 0 ]; then
		make_world_tmpdir
		PIDDIR=$WORLD_TMPDIR/run
		mkdir "$PIDDIR"
		chown nobody:nogroup "$PIDDIR"
	else
		PIDDIR=$BATS_TEST_TMPDIR
	fi
}

# start_detached PIDFILE [ARGS...]: start the daemon without -d (on
# 127.0.0.1, a free port, -u nobody as root, an empty configuration file);
# the foreground command must return 0 at once.  Waits for the pidfile to
# name a live process; sets PORT and DPID (tracked: teardown stops it).
start_detached() {
	local pidfile=$1 user_args=()
	shift
	PORT=$(free_port)
	[ "$(id -u)" != 0 ] || user_args=(-u nobody)
	: >"$BATS_TEST_TMPDIR/empty.conf"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -f "$BATS_TEST_TMPDIR/empty.conf" \
	    -l 127.0.0.1 -p "$PORT" -o pidfile="$pidfile" "${user_args[@]}" "$@"
	[ "$status" -eq 0 ] || fail "detaching start: exit $status; stderr: $stderr"
	wait_until "[ -s '$pidfile' ]" 5
	DPID=$(tr -d '\n' <"$pidfile")
	[[ $DPID =~ ^[0-9]+$ ]] || fail "pidfile holds '$DPID'"
	track_pid "$DPID"
	pid_alive "$DPID"
}

# -- clients ----------------------------------------------------------------

# client [ARGS...]: tests/client.py against the daemon's PORT.
client() {
	"$PYTHON" "$CLIENT" --port "${PORT:?no PORT: start_daemon first}" "$@"
}

# client_bg FILE [ARGS...]: run client.py in the background, its stdout and
# stderr to FILE; sets CLIENT_BG_PID (teardown stops it).
client_bg() {
	local file=$1
	shift
	"$PYTHON" "$CLIENT" --port "${PORT:?}" "$@" >"$file" 2>&1 3>&- &
	export CLIENT_BG_PID=$!
}

# report_value KEY: KEY=VALUE from client.py's report lines in $stderr or
# $output (whichever holds them), e.g. report_value eof-at.
report_value() {
	printf '%s\n%s\n' "${stderr:-}" "${output:-}" | grep -Eo "(^| )$1=[^ ]+" |
	    tail -n 1 | sed 's/^ //; s/^[^=]*=//'
}

# assert_bytes FILE ESCAPED: FILE holds exactly the bytes ESCAPED decodes to
# (Python escapes, as client.py takes them), compared with cmp.
assert_bytes() {
	local want
	want=$(mktemp "$BATS_TEST_TMPDIR/expected.XXXXXX")
	"$PYTHON" "$CLIENT" --decode -- "$2" >"$want"
	if ! cmp -s "$want" "$1"; then
		{
			echo "assert_bytes: $1 differs"
			echo "-- expected:"
			od -An -c "$want"
			echo "-- got:"
			od -An -c "$1"
		} >&2
		return 1
	fi
}

# assert_serves [CLIENT-ARGS...]: a normal client gets `You said:Hello there!\n`
# and a clean end of file.
assert_serves() {
	local out
	out=$(mktemp "$BATS_TEST_TMPDIR/serves.XXXXXX")
	if ! client --timeout 5 --out "$out" "$@" -- 'Hello there!\n' 2>"$out.err"; then
		echo "assert_serves: a normal client failed:" >&2
		cat "$out.err" >&2
		return 1
	fi
	assert_bytes "$out" 'You said:Hello there!\n'
}

# hold_client [CLIENT-ARGS...]: connect in the background and hold the
# connection; its data is sent only by release_client.  Sets HOLD_PID,
# HOLD_PORT (client's local port), HOLD_OUT (bytes received), HOLD_ERR.
hold_client() {
	HOLD_N=$((HOLD_N + 1))
	local base=$BATS_TEST_TMPDIR/hold.$HOLD_N
	HOLD_READY=$base.ready HOLD_GO=$base.go HOLD_OUT=$base.out HOLD_ERR=$base.err
	# python itself in the background (not the client function, whose
	# subshell would be the job and leave python behind when killed).
	"$PYTHON" "$CLIENT" --port "${PORT:?}" --timeout 60 --ready-file "$HOLD_READY" \
	    --wait-file "$HOLD_GO" --out "$HOLD_OUT" "$@" 2>"$HOLD_ERR" 3>&- &
	HOLD_PID=$!
	if ! wait_until "[ -s '$HOLD_READY' ] || ! pid_alive $HOLD_PID" 5 ||
	    [ ! -s "$HOLD_READY" ]; then
		echo "hold_client: client did not connect:" >&2
		cat "$HOLD_ERR" >&2
		return 1
	fi
	# shellcheck disable=SC2034 # API: used by the .bats files
	HOLD_PORT=$(cat "$HOLD_READY")
}

# release_client [SECONDS]: let the held client send and wait for it to end
# (default 10 s).  Sets HOLD_STATUS (client.py's exit status).
release_client() {
	: >"$HOLD_GO"
	wait_until "! pid_alive $HOLD_PID" "${1:-10}" || return 1
	local st=0
	wait "$HOLD_PID" || st=$?
	export HOLD_STATUS=$st
}

# socket_inode LPORT RPORT: inode of the established TCP socket whose local
# port is LPORT and remote port RPORT (IPv4 or IPv6).
socket_inode() {
	awk -v l="$(printf '%04X' "$1")" -v r="$(printf '%04X' "$2")" '
	    $4 == "01" {
		n = split($2, a, ":"); m = split($3, b, ":")
		if (a[n] == l && b[m] == r) { print $10; exit }
	    }' /proc/net/tcp /proc/net/tcp6
}

# _has_socket PID INODE: PID has socket:[INODE] open.
_has_socket() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "socket:[$2]" ] && return 0
	done
	return 1
}

# child_for_port CLIENTPORT [SECONDS]: print the pid of the daemon's child
# that serves the client connected from CLIENTPORT (waits for the fork).
child_for_port() {
	local end inode c
	end=$(_deadline_ms "${2:-5}")
	while :; do
		inode=$(socket_inode "$PORT" "$1")
		if [ -n "$inode" ]; then
			for c in $(children_of "$DAEMON_PID"); do
				if _has_socket "$c" "$inode"; then
					_seen "$c"
					printf '%s\n' "$c"
					return 0
				fi
			done
		fi
		if [ "$(_now_ms)" -ge "$end" ]; then
			echo "child_for_port: no child of $DAEMON_PID serves client port $1" >&2
			return 1
		fi
		sleep 0.02
	done
}

# assert_stderr REGEX: a line of $stderr (run --separate-stderr) matches.
assert_stderr() {
	if ! printf '%s\n' "$stderr" | grep -Eq -- "$1"; then
		printf 'assert_stderr: no line of stderr matches /%s/; stderr:\n%s\n' "$1" "$stderr" >&2
		return 1
	fi
}

# assert_stderr_line TEXT: a line of $stderr is exactly TEXT.
assert_stderr_line() {
	if ! printf '%s\n' "$stderr" | grep -Fxq -- "$1"; then
		printf 'assert_stderr_line: no line of stderr is "%s"; stderr:\n%s\n' "$1" "$stderr" >&2
		return 1
	fi
}

# refute_stderr REGEX: no line of $stderr matches.
refute_stderr() {
	if printf '%s\n' "$stderr" | grep -Eq -- "$1"; then
		printf 'refute_stderr: a line of stderr matches /%s/; stderr:\n%s\n' "$1" "$stderr" >&2
		return 1
	fi
}

# float_test A OP B: numeric comparison of decimals (OP one of < <= > >=).
float_test() {
	awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
	    if (op == "<") r = a < b; else if (op == "<=") r = a <= b
	    else if (op == ">") r = a > b; else if (op == ">=") r = a >= b
	    else r = 0
	    if (!r) printf "float_test: not %s %s %s\n", a, op, b > "/dev/stderr"
	    exit !r }'
}

# copy_binary: sets SRVEXAMPLE_COPY, a private copy of the binary, so that
# procs_of_exe can tell this test's processes from any other srvexample.
copy_binary() {
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	SRVEXAMPLE_COPY=$BATS_TEST_TMPDIR/bin/srvexample
	cp "$SRVEXAMPLE" "$SRVEXAMPLE_COPY"
	ALLOWED_EXES+=("$SRVEXAMPLE_COPY")
}

# procs_of_exe PATH: pids of running (non-zombie) processes executing PATH.
procs_of_exe() {
	local p
	while read -r p; do
		p=${p#/proc/}
		p=${p%/exe}
		if pid_alive "$p"; then
			printf '%s\n' "$p"
		fi
	done < <(find /proc/[0-9]*/exe -maxdepth 0 -lname "$1" 2>/dev/null)
}

# -- named clients and children (limits, hostile, resources, signals.bats) ---

# Filled by hold (H_*) and bg (B_*), keyed by the client's NAME.
# shellcheck disable=SC2034 # API: read by the .bats files
declare -gA H_PID H_GO H_OUT H_PORT B_PID B_OUT B_ERR B_STATUS

# hold NAME [CLIENT-ARGS...]: hold_client, remembered under NAME.
# shellcheck disable=SC2034 # API: read by the .bats files
hold() {
	local name=$1
	shift
	hold_client "$@" || return 1
	H_PID[$name]=$HOLD_PID H_GO[$name]=$HOLD_GO H_OUT[$name]=$HOLD_OUT
	H_PORT[$name]=$HOLD_PORT
}

# release NAME [SECONDS]: let the held client NAME send; wait for it to end
# cleanly (status 0: EOF).
release() {
	local pid=${H_PID[$1]} st=0
	: >"${H_GO[$1]}"
	wait_until "! pid_alive $pid" "${2:-10}" || return 1
	wait "$pid" || st=$?
	[ "$st" -eq 0 ] || fail "held client $1 ended with status $st"
}

# bg NAME [CLIENT-ARGS...]: a client in the background; waits until it has
# connected (or ended).  Its received bytes go to ${B_OUT[NAME]}.
bg() {
	local name=$1
	shift
	B_OUT[$name]=$BATS_TEST_TMPDIR/bg.$name.out
	B_ERR[$name]=$BATS_TEST_TMPDIR/bg.$name.err
	: >"${B_ERR[$name]}"
	client --out "${B_OUT[$name]}" "$@" 2>"${B_ERR[$name]}" 3>&- &
	B_PID[$name]=$!
	wait_until "grep -q '^client: connected' '${B_ERR[$name]}' ||
	    ! pid_alive ${B_PID[$name]}" 5
}

# bg_wait NAME [SECONDS]: wait for background client NAME; sets B_STATUS[NAME].
# shellcheck disable=SC2034 # API: read by the .bats files
bg_wait() {
	local pid=${B_PID[$1]} st=0
	wait_until "! pid_alive $pid" "${2:-10}" || return 1
	wait "$pid" || st=$?
	B_STATUS[$1]=$st
}

# serving_children: the daemon's children (zombies included) but its
# resolver process, which lives as long as the daemon (resolve yes).
serving_children() {
	local c
	for c in $(children_of "$DAEMON_PID"); do
		tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null |
		    grep -Eq '^srvexample: resolver( |$)' || echo "$c"
	done
}

# nchildren: how many children serve clients (zombies included).
nchildren() {
	serving_children | wc -l
}

# no_children [SECONDS]: wait until the daemon has no child serving a client
# (every one exited and was reaped).
no_children() {
	# shellcheck disable=SC2016 # evaluated by wait_until
	wait_until '[ "$(nchildren)" -eq 0 ]' "${1:-5}"
}

# user_args: what start_daemon passes for the user (-u nobody as root).
user_args() {
	if [ "$(id -u)" = 0 ]; then
		printf '%s\n' -u "${DAEMON_USER:-nobody}"
	fi
}

# -- setup and teardown -----------------------------------------------------

# common_setup: refuse to run while a process an earlier test could not stop
# is still alive (as the spiped tests do).
common_setup() {
	local id alive=()
	if [ -s "$LEFTOVERS" ]; then
		while read -r id; do
			_proc_id_alive "$id" && alive+=("$id")
		done <"$LEFTOVERS"
		if [ "${#alive[@]}" -gt 0 ]; then
			printf '%s\n' "${alive[@]}" >"$LEFTOVERS"
			echo "refusing to start: srvexample process(es) left by an earlier test" \
			    "still run: ${alive[*]%%:*} (kill them, then rm $LEFTOVERS)" >&2
			return 1
		fi
		rm -f "$LEFTOVERS"
	fi
}

# _kill_and_wait PID...: SIGTERM, wait up to 5 s, then SIGKILL.
_kill_and_wait() {
	local p
	for p in "$@"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "$@"; do
		if ! _wait_gone "$p" 5; then
			kill -KILL "$p" 2>/dev/null || true
			_wait_gone "$p" 2 || true
		fi
	done
}

# kill_job_children: a backgrounded `client` (a shell function) runs python
# in a subshell, and killing the job leaves python behind: stop those first.
kill_job_children() {
	local j c
	local -a kids
	for j in $(jobs -p); do
		[ "$j" != "$DAEMON_PID" ] || continue
		read -r -a kids 2>/dev/null <"/proc/$j/task/$j/children" || true
		for c in "${kids[@]}"; do
			kill -TERM "$c" 2>/dev/null || true
		done
	done
}

# common_teardown: stop background clients (kill_job_children first),
# tracked processes and the daemon; record survivors; print the logs when the
# test failed.
common_teardown() {
	local rc=0 id j f
	local -a jobs_left=()
	kill_job_children
	for j in $(jobs -p); do
		[ "$j" = "$DAEMON_PID" ] || jobs_left+=("$j")
	done
	# A job may be a subshell (`some_function &`): stop what it runs too.
	for j in "${jobs_left[@]}"; do
		# shellcheck disable=SC2207
		jobs_left+=($(children_of "$j"))
	done
	[ "${#jobs_left[@]}" -eq 0 ] || _kill_and_wait "${jobs_left[@]}"
	for j in "${TRACKED_PIDS[@]}"; do
		if pid_alive "$j"; then
			_remember_children "$j"
			_kill_and_wait "$j"
		fi
	done
	stop_daemon 15 || rc=1
	for id in "${SEEN_PROCS[@]}"; do
		if _proc_id_alive "$id"; then
			kill -KILL "${id%%:*}" 2>/dev/null || true
			_wait_gone "${id%%:*}" 2 || true
			if _proc_id_alive "$id"; then
				echo "teardown: pid ${id%%:*} survives SIGKILL" >&2
				printf '%s\n' "$id" >>"$LEFTOVERS"
				rc=1
			fi
		fi
	done
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ] || [ "$rc" -ne 0 ]; then
		for f in "$BATS_TEST_TMPDIR"/daemon*.log "$BATS_TEST_TMPDIR"/hold.*.err; do
			[ -e "$f" ] || continue
			echo "--- ${f##*/}:"
			cat -v "$f"
		done >&2
	fi
	for f in "${WORLD_TMPDIRS[@]}"; do
		rm -rf "$f"
	done
	return $rc
}

setup() {
	common_setup
}

teardown() {
	common_teardown
}

# as_owner PID COMMAND...: run COMMAND with the real and effective ids of
# PID.  prlimit(2) on another user's process needs CAP_SYS_RESOURCE, which
# even root may lack (containers); the process's own uid and gid suffice to
# lower a soft limit and to raise it again up to the hard limit.
as_owner() {
	local pid=$1 uid gid
	shift
	uid=$(proc_status "$pid" Uid | awk '{ print $1 }')
	gid=$(proc_status "$pid" Gid | awk '{ print $1 }')
	if [ "$uid" = "$(id -u)" ] && [ "$gid" = "$(id -g)" ]; then
		"$@"
	else
		setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
	fi
}

# proc_limit PID RESOURCE SOFT|HARD: the current limit (prlimit's number).
proc_limit() {
	as_owner "$1" prlimit --pid "$1" "--$2" -o "$3" --noheadings | tr -d ' '
}

# set_soft_limit PID RESOURCE VALUE: set the soft limit, keeping the hard one.
set_soft_limit() {
	as_owner "$1" prlimit --pid "$1" "--$2=$3:$(proc_limit "$1" "$2" HARD)"
	[ "$(proc_limit "$1" "$2" SOFT)" = "$3" ]
}
