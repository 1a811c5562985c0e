#!/usr/bin/env bats
# daemon.bats: the process model of SPEC.md: startup log, fork per client,
# detaching with a pidfile, process titles, SIGTERM/SIGINT, reaping without
# zombies and with exact counts, and signals that are not starved under load.

# status, output, lines and stderr come from bats' run; DAEMON_PREFIX, CONF
# and the like are read by test_helper.bash.
# shellcheck disable=SC2154,SC2034
load test_helper

STATS_RE='^stats: served=[0-9]+ active=[0-9]+ eof=[0-9]+ timeouts=[0-9]+ too-long=[0-9]+ errors=[0-9]+ refused=[0-9]+ denied=[0-9]+ crashed=[0-9]+ queued=[0-9]+$'

# refused: a new connection to PORT is refused.
refused() {
	local st=0
	client --timeout 2 'x\n' >/dev/null 2>&1 || st=$?
	[ "$st" -eq 5 ]
}

# cmdline PID: the process title, NULs as spaces.
cmdline() {
	tr '\0' ' ' <"/proc/$1/cmdline"
}

@test "daemon: startup log: listening on, the user line, then ready with version and pid" {
	local version
	version=$("$SRVEXAMPLE" -V)
	version=${version#srvexample }
	start_daemon
	run grep -an -E '^(listening on|running as user|not started as root|ready:)' "$DAEMON_LOG"
	[ "${#lines[@]}" -eq 3 ] || fail "startup lines: $output"
	[[ ${lines[0]} == *":listening on 127.0.0.1 port $PORT" ]] || fail "${lines[0]}"
	if [ "$(id -u)" = 0 ]; then
		[[ ${lines[1]} == *":running as user nobody (uid $(id -u nobody), gid $(id -g nobody))" ]] ||
		    fail "${lines[1]}"
	else
		[[ ${lines[1]} == *":not started as root: running as uid $(id -u), no privilege change" ]] ||
		    fail "${lines[1]}"
	fi
	[[ ${lines[2]} =~ :ready:\ srvexample\ ${version//./\\.},\ pid\ $DAEMON_PID($|,) ]] ||
	    fail "${lines[2]}"
	# ready is the last startup line.
	[ "$(grep -an '^ready: ' "$DAEMON_LOG" | cut -d: -f1)" -eq "$(wc -l <"$DAEMON_LOG")" ]
}

@test "daemon: by default it listens on all addresses, one IPv6 and one IPv4 socket" {
	require_ipv6
	LISTEN='' start_daemon
	wait_for_log "^listening on :: port $PORT\$"
	wait_for_log "^listening on 0\.0\.0\.0 port $PORT\$"
	assert_serves
	assert_serves --host ::1
}

@test "daemon: listens on an IPv4 and an IPv6 address at once" {
	require_ipv6
	start_daemon -l ::1
	wait_for_log "^listening on 127\.0\.0\.1 port $PORT\$"
	wait_for_log "^listening on ::1 port $PORT\$"
	assert_serves
	assert_serves --host ::1
}

@test "daemon: one child per client: a held client does not block the next" {
	local child
	start_daemon
	hold_client 'Hello there!\n'
	child=$(child_for_port "$HOLD_PORT")
	[ "$child" != "$DAEMON_PID" ]
	assert_serves
	release_client
	[ "$HOLD_STATUS" -eq 0 ]
	assert_bytes "$HOLD_OUT" 'You said:Hello there!\n'
}

@test "daemon: the parent closes the client's socket, the child closes the listeners" {
	local child inode fd l
	start_daemon
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT")
	inode=$(socket_inode "$PORT" "$HOLD_PORT")
	[ -n "$inode" ]
	for fd in /proc/"$DAEMON_PID"/fd/*; do
		l=$(readlink "$fd") || continue
		[ "$l" != "socket:[$inode]" ] || fail "the parent still holds the client socket (fd ${fd##*/})"
	done
	# The listening socket's inode: a LISTEN (0A) entry on PORT.
	l=$(awk -v p="$(printf ':%04X' "$PORT")" '$4 == "0A" && $2 ~ p"$" { print $10 }' /proc/net/tcp)
	[ -n "$l" ]
	for fd in /proc/"$child"/fd/*; do
		[ "$(readlink "$fd")" != "socket:[$l]" ] || fail "the child holds the listening socket"
	done
}

@test "daemon: detached (no -d): returns 0, pidfile holds the daemon's pid, it serves" {
	local shell_sid
	make_piddir
	start_detached "$PIDDIR/x.pid"
	# Not our child, not in our session, cwd /, stdio on /dev/null.
	[ "$(proc_field "$DPID" 4)" != "$$" ]
	shell_sid=$(proc_field $$ 6)
	[ "$(proc_field "$DPID" 6)" != "$shell_sid" ] || fail "daemon still in the test's session"
	[ "$(readlink "/proc/$DPID/cwd")" = / ] || fail "cwd $(readlink "/proc/$DPID/cwd")"
	[ "$(readlink "/proc/$DPID/fd/0")" = /dev/null ] || fail "fd 0: $(readlink "/proc/$DPID/fd/0")"
	[ "$(readlink "/proc/$DPID/fd/1")" = /dev/null ] || fail "fd 1: $(readlink "/proc/$DPID/fd/1")"
	[ "$(readlink "/proc/$DPID/fd/2")" = /dev/null ] || fail "fd 2: $(readlink "/proc/$DPID/fd/2")"
	assert_serves
	assert_serves
}

@test "daemon: detached: SIGTERM stops it and removes the pidfile" {
	make_piddir
	start_detached "$PIDDIR/x.pid"
	assert_serves
	kill -TERM "$DPID"
	wait_until "! pid_alive $DPID" 5
	[ ! -e "$PIDDIR/x.pid" ] || fail "pidfile left: $(cat "$PIDDIR/x.pid")"
	refused
}

@test "daemon: a second instance with the same pidfile refuses, naming the running pid" {
	local port2
	make_piddir
	start_detached "$PIDDIR/x.pid"
	port2=$(free_port)
	copy_binary
	run --separate-stderr timeout 10 "$SRVEXAMPLE_COPY" -f "$BATS_TEST_TMPDIR/empty.conf" \
	    -l 127.0.0.1 -p "$port2" -o pidfile="$PIDDIR/x.pid" -u nobody
	[ "$status" -eq 1 ] || fail "second instance: exit $status; stderr: $stderr"
	assert_stderr_line "srvexample: already running as pid $DPID (pidfile $PIDDIR/x.pid)"
	[ -z "$(procs_of_exe "$SRVEXAMPLE_COPY")" ] || fail "second instance left running"
	# The first one is untouched.
	pid_alive "$DPID"
	[ "$(tr -d '\n' <"$PIDDIR/x.pid")" = "$DPID" ]
	assert_serves
}

@test "daemon: a stale pidfile (no lock) does not block a start" {
	local dead
	make_piddir
	# A pid that surely is not running: a finished child of ours.
	sh -c 'exit 0' &
	dead=$!
	wait "$dead" || true
	echo "$dead" >"$PIDDIR/x.pid"
	[ "$(id -u)" != 0 ] || chown nobody:nogroup "$PIDDIR/x.pid"
	start_detached "$PIDDIR/x.pid"
	[ "$DPID" != "$dead" ]
	assert_serves
}

@test "daemon: pidfile none: detached without a pidfile" {
	PORT=$(free_port)
	copy_binary
	: >"$BATS_TEST_TMPDIR/empty.conf"
	local -a user_args=()
	[ "$(id -u)" != 0 ] || user_args=(-u nobody)
	run --separate-stderr timeout 10 "$SRVEXAMPLE_COPY" -f "$BATS_TEST_TMPDIR/empty.conf" \
	    -l 127.0.0.1 -p "$PORT" -o pidfile=none "${user_args[@]}"
	[ "$status" -eq 0 ] || fail "exit $status: $stderr"
	wait_until '[ -n "$(procs_of_exe "$SRVEXAMPLE_COPY")" ]' 5
	track_pid "$(procs_of_exe "$SRVEXAMPLE_COPY" | head -n 1)"
	assert_serves
}

@test "daemon: process titles: the parent shows what it listens on, a child its client" {
	local title child ctitle
	start_daemon
	title=$(cmdline "$DAEMON_PID")
	[[ $title == *127.0.0.1* ]] || fail "parent title: $title"
	[[ $title == *"$PORT"* ]] || fail "parent title: $title"
	# A client from 127.0.0.2, an address only the child's title can name.
	hold_client --source 127.0.0.2 'x\n'
	child=$(child_for_port "$HOLD_PORT")
	wait_until "[[ \"\$(cmdline $child)\" == *127.0.0.2* ]]" 2 ||
	    fail "child title: $(cmdline "$child")"
	ctitle=$(cmdline "$child")
	[ "$ctitle" != "$title" ]
	echo "# parent title: $title; child title: $ctitle" >&3
}

@test "daemon: SIGTERM in -d mode: listeners closed, exit status 0" {
	start_daemon
	assert_serves
	signal_daemon TERM
	wait_daemon_exit 5
	[ "$DAEMON_STATUS" -eq 0 ] || fail "exit status $DAEMON_STATUS"
	wait_for_log '^received SIGTERM, shutting down$' 0
	wait_for_log '^exiting$' 0
	refused
}

@test "daemon: SIGINT in -d mode: listeners closed, exit status 0" {
	start_daemon
	assert_serves
	signal_daemon INT
	wait_daemon_exit 5
	[ "$DAEMON_STATUS" -eq 0 ] || fail "exit status $DAEMON_STATUS"
	wait_for_log '^received SIGINT, shutting down$' 0
	refused
}

@test "daemon: SIGTERM closes the listeners at once while a child still serves (grace)" {
	start_daemon
	hold_client 'Hello there!\n'
	child_for_port "$HOLD_PORT" >/dev/null
	signal_daemon TERM
	wait_for_log '^received SIGTERM, shutting down$'
	wait_until refused 2
	# The parent waits for its child (grace, 10 s by default) ...
	pid_alive "$DAEMON_PID" || fail "the parent exited before its child finished"
	# ... which still answers its client.
	release_client
	[ "$HOLD_STATUS" -eq 0 ]
	assert_bytes "$HOLD_OUT" 'You said:Hello there!\n'
	wait_daemon_exit 5
	[ "$DAEMON_STATUS" -eq 0 ]
}

@test "daemon: SIGUSR1 logs one stats line in the contract's format" {
	start_daemon
	run daemon_stats
	assert_success
	assert_output --regexp "$STATS_RE"
	assert_output --regexp '^stats: served=0 active=0 '
}

@test "daemon: the stats counters count each outcome exactly once" {
	local key want
	start_daemon -o max-line=16 -o timeout=1
	client 'Hello there!\n' >/dev/null 2>&1            # ok
	client --shutdown >/dev/null 2>&1                  # eof
	client '0123456789abcdefghij\n' >/dev/null 2>&1    # too-long
	client >/dev/null 2>&1                             # timeout
	wait_until "[ \$(log_count '^end client=') -eq 4 ]" 5
	wait_until 'daemon_stats | grep -q " active=0 "' 5
	for want in served=1 active=0 eof=1 timeouts=1 too-long=1 errors=0 refused=0 \
	    denied=0 crashed=0; do
		key=${want%=*}
		[ "$(stats_value "$key")" = "${want#*=}" ] ||
		    fail "$key=$(stats_value "$key"), expected $want: $(grep -a '^stats:' "$DAEMON_LOG" | tail -n 1)"
	done
}

@test "daemon: reaps every child: 200 sequential + 50 parallel clients, no zombie, served=250" {
	# All clients come from 127.0.0.1: lift the per-source limit (16).
	start_daemon -o resolve=no -o max-per-source=0
	run client --repeat 200 --expect 'You said:x\n' 'x\n'
	assert_success
	run client --repeat 50 --parallel 50 --expect 'You said:x\n' 'x\n'
	assert_success
	wait_until 'daemon_stats | grep -q " served=250 active=0 "' 10
	run daemon_stats
	assert_output --regexp '^stats: served=250 active=0 '
	wait_until '[ -z "$(zombies_of "$DAEMON_PID")" ]' 2 ||
	    fail "zombies: $(zombies_of "$DAEMON_PID")"
	[ -z "$(children_of "$DAEMON_PID")" ] || fail "children left: $(children_of "$DAEMON_PID")"
	[ "$(log_count '^end client=.* outcome=ok ')" -eq 250 ]
}

@test "daemon: signals are not starved under load: SIGUSR1 answered, SIGTERM stops it promptly" {
	local load t0 i
	start_daemon -o resolve=no -o max-per-source=0
	client_bg "$BATS_TEST_TMPDIR/load.out" --repeat 0 --duration 30 --parallel 16 \
	    --timeout 3 --ignore-errors 'x\n'
	load=$CLIENT_BG_PID
	wait_until "[ \$(log_count '^end client=') -ge 200 ]" 15
	for i in 1 2 3; do
		daemon_stats >/dev/null || fail "no stats line under load (round $i)"
	done
	t0=$(_now_ms)
	signal_daemon TERM
	wait_daemon_exit 5 || fail "still running 5 s after SIGTERM under load"
	echo "# stopped $(($(_now_ms) - t0)) ms after SIGTERM" >&3
	[ "$DAEMON_STATUS" -eq 0 ]
	[ $(($(_now_ms) - t0)) -lt 3000 ]
	kill "$load" 2>/dev/null || true
}

@test "daemon: a storm of SIGUSR1 while clients are served loses no client and no count" {
	local load i
	start_daemon -o resolve=no
	client_bg "$BATS_TEST_TMPDIR/load.out" --repeat 300 --parallel 6 \
	    --expect 'You said:x\n' 'x\n'
	load=$CLIENT_BG_PID
	for i in $(seq 1 100); do
		kill -USR1 "$DAEMON_PID"
		pid_alive "$load" || break
	done
	wait "$load" || fail "clients failed during the storm: $(cat "$BATS_TEST_TMPDIR/load.out")"
	wait_until 'daemon_stats | grep -q " served=300 active=0 "' 10
	[ "$(log_count '^end client=.* outcome=ok ')" -eq 300 ]
	assert_serves
}
