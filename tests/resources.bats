#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until and stays_true are single-quoted on purpose (evaluated later);
# each @test runs in its own subshell, so its assignments are meant to stay
# there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# Exhausted resources (issue 3): no descriptors (EMFILE under prlimit
# --nofile), no processes (fork failing under prlimit --nproc), and a broken
# log sink (/dev/full, a pipe nobody reads any more, a pipe nobody empties,
# no syslog).  The daemon must not spin, must log rate-limited, must keep
# serving or recover by itself.

load test_helper

# -- helpers local to this file (test_helper.bash has the shared ones) --------

# cpu_ticks PID: user + system CPU time of PID in clock ticks.
cpu_ticks() {
	echo $(($(proc_field "$1" 14) + $(proc_field "$1" 15)))
}

# lowest_free_fd PID: the descriptor number PID would get next.
lowest_free_fd() {
	local n=0
	while [ -e "/proc/$1/fd/$n" ]; do
		n=$((n + 1))
	done
	echo "$n"
}

# start_daemon_stderr REDIRECT-TARGET [ARGS...]: start the daemon with -d and
# its stderr (the log) going to REDIRECT-TARGET; no log to wait for, so wait
# until a client is answered.  Sets DAEMON_PID and PORT.  No per-source
# limit: serve_many's 4 clients at a time from 127.0.0.1 would otherwise
# meet the children of the last ones still exiting (seen: 2 of 600 refused
# "too many connections from your address" on a slow machine).
start_daemon_stderr() {
	local target=$1
	shift
	CONF=$BATS_TEST_TMPDIR/srvexample.conf
	: >"$CONF"
	PORT=$(free_port)
	mapfile -t uargs < <(user_args)
	"$SRVEXAMPLE" -d -f "$CONF" -l 127.0.0.1 -p "$PORT" "${uargs[@]}" \
	    -o resolve=no -o max-per-source=0 "$@" </dev/null >/dev/null \
	    2>"$target" 3>&- &
	DAEMON_PID=$!
	DAEMON_LOG=/dev/null
	_seen "$DAEMON_PID"
	wait_until "client --timeout 1 --expect 'You said:up\\n' 'up\\n' 2>/dev/null ||
	    ! pid_alive $DAEMON_PID" 10
	pid_alive "$DAEMON_PID"
}

# serve_many N: N clients, 4 at a time, every one answered exactly (and all
# of them started within 15 s).
serve_many() {
	run --separate-stderr client --repeat "$1" --parallel 4 --timeout 3 \
	    --duration 15 --expect 'You said:load\n' 'load\n'
	[ "$status" -eq 0 ] || fail "not all $1 clients were answered: $stderr"
	[[ $stderr == *"client: repeat ok=$1 failed=0"* ]] ||
	    fail "not all $1 clients were answered within 15 s: $stderr"
}

# -- EMFILE -------------------------------------------------------------------------

# starve_fds: lower the daemon's descriptor limit to what it has open, so
# that its next accept() fails with EMFILE.  Sets SOFT (the old limit).
starve_fds() {
	SOFT=$(proc_limit "$DAEMON_PID" nofile SOFT)
	set_soft_limit "$DAEMON_PID" nofile "$(lowest_free_fd "$DAEMON_PID")"
}

@test "EMFILE: out of descriptors the daemon does not spin, logs rate-limited, recovers" {
	start_daemon -o resolve=no
	pid=$DAEMON_PID
	starve_fds
	for c in 1 2 3 4; do
		bg "c$c" --timeout 20 "waiting $c\\n"
	done
	wait_for_log '^accept( \(repeated failures\))?: Too many open files$' 5
	t0=$(cpu_ticks "$pid")
	# A measurement window, not a synchronisation: the daemon must stay
	# alive and nearly idle while its clients wait.
	end=$(($(_now_ms) + 2000))
	while [ "$(_now_ms)" -lt "$end" ]; do
		pid_alive "$pid"
		sleep 0.1
	done
	used=$(($(cpu_ticks "$pid") - t0))
	hz=$(getconf CLK_TCK)
	[ $((used * 100 / hz)) -lt 30 ] ||
	    fail "the daemon burnt $used ticks (of $hz/s) in 2 s while out of descriptors"
	n_log=$(log_count '^accept')
	[ "$n_log" -ge 1 ] && [ "$n_log" -le 3 ] ||
	    fail "$n_log accept error lines in 2 s (want a rate-limited 1..3)"

	set_soft_limit "$pid" nofile "$SOFT"
	# Every waiting client got an answer, or one Error line while descriptors
	# were short (the reserve descriptor makes the backlog move).
	busy=0
	for c in 1 2 3 4; do
		bg_wait "c$c" 10
		got=$(cat -v "${B_OUT[c$c]}")
		case $got in
		"You said:waiting $c") ;;
		"Error: server busy") busy=$((busy + 1)) ;;
		*) fail "client c$c got '$got': $(cat "${B_ERR[c$c]}")" ;;
		esac
	done
	assert_serves
	serve_many 20
	pid_alive "$pid"
	no_children
	daemon_stats
	[ "$(stats_value busy)" -eq "$busy" ]
	[ "$(stats_value served)" -eq $((4 - busy + 21)) ]
}

@test "EMFILE: a client refused for want of descriptors gets its Error line and a clean close, not a reset" {
	start_daemon -o resolve=no
	starve_fds
	bg first --timeout 10 'first\n'
	wait_for_log '^accept( \(repeated failures\))?: Too many open files$' 5
	# The daemon pauses accepting now; this client's line and more bytes
	# are surely waiting unread when the reserve descriptor takes it.
	run --separate-stderr client --timeout 10 --keep-sending 61440 'second\n'
	bg_wait first 10
	set_soft_limit "$DAEMON_PID" nofile "$SOFT"
	[ "$status" -eq 0 ] ||
	    fail "SPEC.md: lingering close for refusals too; got status $status: $stderr"
	assert_output 'Error: server busy'
	refute_stderr 'send-error'
	[ "${B_STATUS[first]}" -eq 0 ] ||
	    fail "SPEC.md: lingering close for refusals too; first client: $(cat "${B_ERR[first]}")"
	assert_bytes "${B_OUT[first]}" 'Error: server busy\n'
	assert_serves
}

@test "EMFILE: once descriptors free up, new clients are served within the pause" {
	start_daemon -o resolve=no
	starve_fds
	bg first --timeout 20 'first\n'
	wait_for_log '^accept( \(repeated failures\))?: Too many open files$' 5
	set_soft_limit "$DAEMON_PID" nofile "$SOFT"
	bg_wait first 5
	# A client that arrives now is served after at most the pause (<= 1 s).
	t0=$(_now_ms)
	assert_serves
	[ $(($(_now_ms) - t0)) -lt 1500 ]
	serve_many 20
	no_children
	daemon_stats
	[ "$(stats_value served)" -eq 21 ]
	[ "$(stats_value active)" -eq 0 ]
}

@test "EMFILE: repeated accept failures are summarised with their count" {
	start_daemon -o resolve=no
	starve_fds
	# Clients keep coming for longer than one rate-limit window (5 s).
	client --duration 6.5 --parallel 2 --timeout 5 --ignore-errors 'x\n' \
	    >"$BATS_TEST_TMPDIR/load.out" 2>&1 3>&- &
	load=$!
	wait_until "! pid_alive $load" 15
	set_soft_limit "$DAEMON_PID" nofile "$SOFT"
	n_log=$(log_count '^accept')
	[ "$n_log" -ge 2 ] && [ "$n_log" -le 3 ] ||
	    fail "$n_log accept error lines in 6.5 s (want 2..3 with a 5 s window)"
	# contract.md: "accept: Too many open files (repeated 57 times)" style.
	grep -Eaq '^accept: Too many open files \(repeated [0-9]+ times\)$' "$DAEMON_LOG" ||
	    fail "no summary with a count; the accept lines are: $(grep -a '^accept' "$DAEMON_LOG")"
	assert_serves
}

# -- fork failure ---------------------------------------------------------------------

@test "fork failure: clients get 'Error: server busy', one log line, service resumes by itself" {
	require_root
	start_daemon -o resolve=no        # as root: -u nobody
	pid=$DAEMON_PID
	[ "$(proc_status "$pid" Uid | awk '{ print $1 }')" = "$(id -u nobody)" ]
	soft=$(proc_limit "$pid" nproc SOFT)
	# nobody runs at least the daemon itself: a limit of 1 makes fork fail.
	set_soft_limit "$pid" nproc 1

	run --separate-stderr client --timeout 5 'one\n'
	assert_success
	assert_output 'Error: server busy'
	wait_for_log '^fork( \(repeated failures\))?: Resource temporarily unavailable$' 2
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=refused reason=busy ' 2
	# More clients while fork fails: each waits out a pause at most, then
	# gets the same clean refusal.
	run --separate-stderr client --repeat 5 --parallel 5 --timeout 10 \
	    --expect 'Error: server busy\n' 'more\n'
	assert_success
	assert_stderr '^client: repeat ok=5 failed=0$'
	n_log=$(log_count '^fork')
	[ "$n_log" -ge 1 ] && [ "$n_log" -le 2 ] ||
	    fail "$n_log fork failure lines for 6 failures (want a rate-limited 1..2)"
	[ "$(children_of "$pid" | wc -l)" -eq 0 ]

	set_soft_limit "$pid" nproc "$soft"
	wait_until 'client --timeout 3 --expect "You said:back\\n" "back\\n" 2>/dev/null' 5
	assert_serves
	serve_many 20
	daemon_stats
	[ "$(stats_value refused)" -eq 6 ]
	grep -Eaq '^refusals: .* busy=6$' "$DAEMON_LOG"
	[ "$(stats_value served)" -eq 22 ]
}

# -- a broken log sink ------------------------------------------------------------------

@test "broken log sink: stderr on /dev/full (a full disk) never stops clients being served" {
	start_daemon_stderr /dev/full
	serve_many 30
	kill -USR1 "$DAEMON_PID"
	kill -HUP "$DAEMON_PID"
	serve_many 10
	pid_alive "$DAEMON_PID"
	stop_daemon 5
	[ "$DAEMON_STATUS" -eq 0 ]
}

@test "broken log sink: stderr a pipe nobody reads any more (EPIPE) never stops service" {
	mkfifo "$BATS_TEST_TMPDIR/log.fifo"
	exec {rfd}<>"$BATS_TEST_TMPDIR/log.fifo"
	start_daemon_stderr "$BATS_TEST_TMPDIR/log.fifo"
	# The daemon closed its inherited copy of our read end at startup
	# (closefrom); ours goes now: no reader is left.
	exec {rfd}<&-
	serve_many 30
	kill -USR1 "$DAEMON_PID"
	kill -HUP "$DAEMON_PID"
	serve_many 10
	pid_alive "$DAEMON_PID"
	stop_daemon 5
	[ "$DAEMON_STATUS" -eq 0 ]
}

@test "broken log sink: stderr a pipe nobody empties (stuck reader) never blocks service" {
	mkfifo "$BATS_TEST_TMPDIR/log.fifo"
	exec {rfd}<>"$BATS_TEST_TMPDIR/log.fifo"
	start_daemon_stderr "$BATS_TEST_TMPDIR/log.fifo" -v
	serve_many 600
	# The pipe is full now (log lines nobody read; a line is < 1100 bytes) ...
	read -r queued size < <("$PYTHON" -c '
import array, fcntl, termios
buf = array.array("i", [0])
fcntl.ioctl(0, termios.FIONREAD, buf)
print(buf[0], fcntl.fcntl(0, 1032))  # F_GETPIPE_SZ' <&"$rfd")
	[ "$queued" -gt $((size - 1100)) ] ||
	    fail "only $queued of $size bytes in the log pipe: not full yet"
	# ... and clients are still answered at once.
	t0=$(_now_ms)
	assert_serves
	[ $(($(_now_ms) - t0)) -lt 1000 ]
	kill -USR1 "$DAEMON_PID"
	serve_many 20
	pid_alive "$DAEMON_PID"
	stop_daemon 5
	[ "$DAEMON_STATUS" -eq 0 ]
	exec {rfd}<&-
}

@test "broken log sink: log syslog with no syslog socket never stops service" {
	[ ! -e /dev/log ] || skip "a syslog socket exists here (/dev/log)"
	start_daemon_stderr "$BATS_TEST_TMPDIR/stderr" -o log=syslog
	serve_many 20
	pid_alive "$DAEMON_PID"
	stop_daemon 5
	[ "$DAEMON_STATUS" -eq 0 ]
}
