#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until and stays_true are single-quoted on purpose (evaluated later);
# each @test runs in its own subshell, so its assignments are meant to stay
# there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# Signals (issue 3): SIGTERM/SIGINT drain with grace, the pidfile, SIGHUP
# reload (good, bad, restart-only keywords), SIGUSR1 counters, and a storm
# of HUP/USR1/CHLD while clients are served.  Every test ends by checking
# that a normal client is still answered (or, after a stop, that nothing
# listens any more).

load test_helper

# -- helpers local to this file (test_helper.bash has the shared ones) --------

# tcp_refused: a plain connect to PORT is refused; bash's /dev/tcp starts no
# process, so this is quick even on a loaded machine.
tcp_refused() {
	! (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

# assert_refused: a new connection is refused (nothing listens).
assert_refused() {
	run --separate-stderr client --timeout 2 'x\n'
	[ "$status" -eq 5 ] || fail "connect was not refused (status $status): $stderr"
	assert_stderr '^client: connect failed \(Connection refused\)'
}

# world_conf TEXT: a configuration file the dropped user can read again on
# SIGHUP; sets CONF (used by start_daemon).
world_conf() {
	make_world_tmpdir
	CONF=$WORLD_TMPDIR/srvexample.conf
	printf '%b' "$1" >"$CONF"
	chmod 644 "$CONF"
}

# set_conf TEXT: rewrite the configuration file.
set_conf() {
	printf '%b' "$1" >"$CONF.new"
	chmod 644 "$CONF.new"
	mv "$CONF.new" "$CONF"
}

# reload: SIGHUP, then wait for the reload's verdict line; prints it.
reload() {
	local n
	n=$(log_count '^(configuration reloaded|reload failed, keeping the running configuration)$')
	signal_daemon HUP
	wait_until "[ \$(log_count '^(configuration reloaded|reload failed, keeping the running configuration)\$') -gt $n ]" 5 || return 1
	grep -aE '^(configuration reloaded|reload failed, keeping the running configuration)$' "$DAEMON_LOG" | tail -n 1
}

# -- SIGTERM and SIGINT ---------------------------------------------------------

# drain_test SIG: with a held client and grace=2, SIG closes the listeners at
# once, terminates the child when the grace is over, and the daemon exits 0.
drain_test() {
	start_daemon -o grace=2 -o resolve=no
	assert_serves
	# The served child has exited (it lingers a while under valgrind), so
	# that the held one is the only child the grace ends.
	no_children 10 || fail "the served child is still alive"
	hold_client
	pid_a=$(child_for_port "$HOLD_PORT")
	t0=$(_now_ms)
	kill -s "$1" "$DAEMON_PID"
	wait_for_log "^received SIG$1, shutting down\$" 5
	tcp_refused
	pid_alive "$pid_a"              # still in its grace: the listener went first
	assert_refused
	wait_until "! pid_alive $pid_a" 8
	dt=$(($(_now_ms) - t0))
	if [ "$dt" -lt 1900 ] || [ "$dt" -gt 5000 ]; then
		fail "child stopped $dt ms after SIG$1 (grace 2 s)"
	fi
	wait_daemon_exit 5
	[ "$DAEMON_STATUS" -eq 0 ]
	grep -aq '^grace period over, stopping 1 children$' "$DAEMON_LOG"
	[ "$(tail -n 1 "$DAEMON_LOG")" = exiting ]
	[ "$(log_count 'killed by signal')" -eq 0 ]
	# The held client saw a clean end of its connection.
	release_client 5
	[ "$HOLD_STATUS" -eq 0 ]
	assert_bytes "$HOLD_OUT" ''
	assert_refused
}

@test "SIGTERM: listeners close at once, a held child is stopped after grace, exit 0" {
	drain_test TERM
}

@test "SIGINT: the same as SIGTERM" {
	drain_test INT
}

@test "SIGTERM: grace lets a slow but finishing client finish, then the daemon exits" {
	# A grace far longer than the client takes: a daemon that waited it out
	# is told from one that exits with its last child, whatever the speed.
	start_daemon -o grace=30 -o resolve=no
	hold_client --pieces 5 --gap 0.1 'late line\n'
	pid_a=$(child_for_port "$HOLD_PORT")
	t0=$(_now_ms)
	signal_daemon TERM
	wait_for_log '^received SIGTERM, shutting down$' 2
	assert_refused
	release_client 5
	[ "$HOLD_STATUS" -eq 0 ]
	assert_bytes "$HOLD_OUT" 'You said:late line\n'
	wait_daemon_exit 5
	[ "$DAEMON_STATUS" -eq 0 ]
	dt=$(($(_now_ms) - t0))
	[ "$dt" -lt 30000 ] || fail "the daemon waited out its grace ($dt ms) although its last child was done"
	[ "$(log_count '^grace period over')" -eq 0 ]
	grep -Eaq "^end client=127\.0\.0\.1 port=$HOLD_PORT pid=$pid_a outcome=ok " "$DAEMON_LOG"
	assert_refused
}

@test "SIGTERM: a detached daemon removes its pidfile and exits" {
	[ -z "${SRVEXAMPLE_VALGRIND:-}" ] || skip "under valgrind /proc/PID/exe is valgrind, not srvexample"
	make_world_tmpdir
	pidfile=$WORLD_TMPDIR/run/srvexample.pid
	# Started as root, the daemon creates the directory for the user it
	# drops to; otherwise it must exist.
	[ "$(id -u)" = 0 ] || mkdir "$WORLD_TMPDIR/run"
	CONF=$BATS_TEST_TMPDIR/srvexample.conf
	: >"$CONF"
	PORT=$(free_port)
	mapfile -t uargs < <(user_args)
	run "$SRVEXAMPLE" -f "$CONF" -l 127.0.0.1 -p "$PORT" "${uargs[@]}" \
	    -o grace=1 -o resolve=no -o pidfile="$pidfile" 3>&-
	assert_success
	wait_until "[ -s '$pidfile' ]"
	pid=$(cat "$pidfile")
	track_pid "$pid"
	pid_alive "$pid"
	[ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$SRVEXAMPLE")" ]
	wait_until "client --timeout 1 --expect 'You said:up\\n' 'up\\n' 2>/dev/null" 5
	assert_serves

	DAEMON_PID=$pid hold_client
	pid_a=$(DAEMON_PID=$pid child_for_port "$HOLD_PORT")
	kill -TERM "$pid"
	wait_until "! pid_alive $pid" 6
	[ ! -e "$pidfile" ] || fail "pidfile $pidfile left behind"
	if pid_alive "$pid_a"; then fail "child $pid_a outlived the daemon"; fi
	assert_refused
}

@test "children ignore HUP, USR1 and INT sent to them and still answer" {
	start_daemon -o resolve=no
	hold_client 'still here\n'
	pid_a=$(child_for_port "$HOLD_PORT")
	kill -HUP "$pid_a"
	kill -USR1 "$pid_a"
	kill -INT "$pid_a"
	pid_alive "$pid_a"
	release_client 5
	[ "$HOLD_STATUS" -eq 0 ]
	assert_bytes "$HOLD_OUT" 'You said:still here\n'
	assert_serves
}

# -- SIGHUP -------------------------------------------------------------------------

@test "SIGHUP: a new max-line applies to new clients" {
	world_conf 'max-line 12\n'
	start_daemon -o resolve=no
	run --separate-stderr client --timeout 5 'abcdefghijklmno\n'
	assert_output 'Error: line too long'
	set_conf 'max-line 20\n'
	run reload
	assert_output 'configuration reloaded'
	grep -aq '^reloading configuration$' "$DAEMON_LOG"
	run --separate-stderr client --timeout 5 'abcdefghijklmno\n'
	assert_success
	assert_output 'You said:abcdefghijklmno'
	run --separate-stderr client --timeout 5 'abcdefghijklmnopqrstu\n'
	assert_output 'Error: line too long'
	assert_serves
}

@test "SIGHUP: new access rules apply to new clients" {
	world_conf ''
	start_daemon -o resolve=no
	assert_serves --source 127.0.0.2
	set_conf 'deny 127.0.0.2\n'
	run reload
	assert_output 'configuration reloaded'
	run --separate-stderr client --timeout 5 --source 127.0.0.2 'x\n'
	assert_success
	assert_output ''
	wait_for_log '^end client=127\.0\.0\.2 .* outcome=denied '
	assert_serves
}

@test "SIGHUP: a client connected before the reload keeps the old limit" {
	world_conf 'max-line 12\n'
	start_daemon -o resolve=no
	hold_client 'abcdefghijklmno\n'
	child_for_port "$HOLD_PORT" >/dev/null
	set_conf 'max-line 20\n'
	run reload
	assert_output 'configuration reloaded'
	release_client 5
	assert_bytes "$HOLD_OUT" 'Error: line too long\n'
	run --separate-stderr client --timeout 5 'abcdefghijklmno\n'
	assert_output 'You said:abcdefghijklmno'
}

@test "SIGHUP: a bad file logs every error with FILE:LINE and keeps the running configuration" {
	world_conf 'max-line 12\n'
	start_daemon -o resolve=no
	set_conf '# comment\nmax-line 20\nbogus yes\ntimeout 0\n'
	run reload
	assert_output 'reload failed, keeping the running configuration'
	grep -Fxq "$CONF:3: unknown keyword \"bogus\"" "$DAEMON_LOG"
	grep -Fxq "$CONF:4: timeout: \"0\" is too small" "$DAEMON_LOG"
	[ "$(log_count '^configuration reloaded$')" -eq 0 ]
	# The old max-line still applies, and the daemon still listens.
	run --separate-stderr client --timeout 5 'abcdefghijklmno\n'
	assert_output 'Error: line too long'
	assert_serves
	pid_alive "$DAEMON_PID"
	# Fixed, the file is taken.
	set_conf 'max-line 20\n'
	run reload
	assert_output 'configuration reloaded'
	run --separate-stderr client --timeout 5 'abcdefghijklmno\n'
	assert_output 'You said:abcdefghijklmno'
}

@test "SIGHUP: an unreadable file keeps the running configuration" {
	world_conf 'max-line 12\n'
	start_daemon -o resolve=no
	rm -f "$CONF"
	run reload
	assert_output 'reload failed, keeping the running configuration'
	run --separate-stderr client --timeout 5 'abcdefghijklmno\n'
	assert_output 'Error: line too long'
	assert_serves
}

@test "SIGHUP: a changed port needs a restart; the old port keeps serving" {
	world_conf ''
	port1=$(free_port)
	port2=$(free_port)
	[ "$port1" != "$port2" ]
	set_conf "listen 127.0.0.1\nport $port1\n"
	mapfile -t uargs < <(user_args)
	DAEMON_LOG=$BATS_TEST_TMPDIR/daemon.log
	"$SRVEXAMPLE" -d -f "$CONF" "${uargs[@]}" -o resolve=no \
	    </dev/null >"$DAEMON_LOG" 2>&1 3>&- &
	DAEMON_PID=$! PORT=$port1
	wait_for_log '^ready: ' 10
	grep -aq "^listening on 127\.0\.0\.1 port $port1\$" "$DAEMON_LOG"
	assert_serves

	set_conf "listen 127.0.0.1\nport $port2\n"
	run reload
	assert_output 'configuration reloaded'
	grep -Eaq '(^|[ ,])port[ ,].*changed: takes effect after a restart$' "$DAEMON_LOG"
	assert_serves
	PORT=$port2 assert_refused
	assert_serves
}

@test "SIGHUP: a changed group needs a restart and is logged" {
	require_root
	world_conf ''
	start_daemon -o resolve=no
	# -u on the command line wins over the file, so change the group.
	set_conf 'group daemon\n'
	run reload
	assert_output 'configuration reloaded'
	grep -Eaq 'group.*changed: takes effect after a restart$' "$DAEMON_LOG"
	hold_client 'x\n'
	pid_a=$(child_for_port "$HOLD_PORT")
	[ "$(proc_status "$pid_a" Gid | awk '{ print $1 }')" = "$(id -g nobody)" ]
	release_client 5
	assert_serves
}

# -- SIGUSR1 ------------------------------------------------------------------------

@test "SIGUSR1: one stats line with exact counters" {
	start_daemon -o resolve=no
	for _ in 1 2 3; do
		assert_serves
	done
	run client --timeout 5 --shutdown                # eof
	assert_success
	run --separate-stderr client --timeout 5 --size 5000   # too-long
	assert_output 'Error: line too long'
	no_children
	run daemon_stats
	assert_success
	[ "$(log_count '^stats: ')" -eq 1 ]
	[ "$(stats_value served)" -eq 3 ]
	[ "$(stats_value active)" -eq 0 ]
	[ "$(stats_value eof)" -eq 1 ]
	[ "$(stats_value too-long)" -eq 1 ]
	[ "$(stats_value timeouts)" -eq 0 ]
	[ "$(stats_value errors)" -eq 0 ]
	[ "$(stats_value refused)" -eq 0 ]
	[ "$(stats_value denied)" -eq 0 ]
	[ "$(stats_value crashed)" -eq 0 ]
	hold_client 'x\n'
	child_for_port "$HOLD_PORT" >/dev/null
	daemon_stats
	[ "$(log_count '^stats: ')" -eq 2 ]
	[ "$(stats_value active)" -eq 1 ]
	[ "$(stats_value served)" -eq 3 ]
	release_client 5
	assert_serves
	no_children
	daemon_stats
	[ "$(stats_value served)" -eq 5 ]
	[ "$(stats_value active)" -eq 0 ]
}

# -- a storm of signals ------------------------------------------------------------------

@test "signal storm: 200 HUP/USR1 while 300 clients are served loses no client and no count" {
	skip_under_valgrind_load
	world_conf ''
	start_daemon -o resolve=no
	load_out=$BATS_TEST_TMPDIR/load.out
	# Each client sends its line in two pieces 50 ms apart, so that the
	# 300 take seconds and the storm surely hits while they are served.
	client --repeat 300 --parallel 4 --timeout 10 --pieces 2 --gap 0.05 \
	    --expect 'You said:storm\n' 'storm\n' >"$load_out" 2>&1 3>&- &
	load=$!
	wait_for_log '^Connection from ' 5
	hups=0 usr1s=0
	for _ in $(seq 200); do
		if [ $((RANDOM % 2)) -eq 0 ]; then
			kill -HUP "$DAEMON_PID"
			hups=$((hups + 1))
		else
			kill -USR1 "$DAEMON_PID"
			usr1s=$((usr1s + 1))
		fi
	done
	# The storm hit while the load ran (else this test proves nothing).
	pid_alive "$load" || fail "the 300 clients were done before the storm ended"
	wait_until "! pid_alive $load" 30
	st=0
	wait "$load" || st=$?
	[ "$st" -eq 0 ] || fail "clients failed: $(cat "$load_out")"
	grep -q '^client: repeat ok=300 failed=0$' "$load_out"
	pid_alive "$DAEMON_PID"
	no_children
	[ -z "$(zombies_of "$DAEMON_PID")" ]
	[ "$(log_count '^reload failed')" -eq 0 ]
	n=$(log_count '^configuration reloaded$')
	[ "$n" -ge 1 ] && [ "$n" -le "$hups" ]
	n=$(log_count '^stats: ')
	[ "$n" -ge 1 ] && [ "$n" -le "$usr1s" ]
	daemon_stats
	[ "$(stats_value served)" -eq 300 ]
	[ "$(stats_value active)" -eq 0 ]
	[ "$(stats_value errors)" -eq 0 ]
	[ "$(stats_value refused)" -eq 0 ]
	[ "$(log_count ' outcome=ok ')" -eq 300 ]
	assert_serves
}

@test "signal storm: SIGTERM in the middle of a load drains cleanly" {
	skip_under_valgrind_load
	start_daemon -o resolve=no -o grace=5
	load_out=$BATS_TEST_TMPDIR/load.out
	client --repeat 2000 --parallel 4 --timeout 10 --ignore-errors \
	    'storm\n' >"$load_out" 2>&1 3>&- &
	load=$!
	wait_until '[ "$(log_count " outcome=ok ")" -ge 20 ]' 10
	signal_daemon TERM
	wait_daemon_exit 8
	[ "$DAEMON_STATUS" -eq 0 ]
	[ "$(log_count '^grace period over')" -eq 0 ]
	[ "$(log_count 'killed by signal')" -eq 0 ]
	wait_until "! pid_alive $load" 15
	assert_refused
}
