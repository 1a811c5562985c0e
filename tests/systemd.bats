#!/usr/bin/env bats
# systemd.bats: systemd integration without a running systemd: the units
# (systemd-analyze verify and security), socket activation and inetd mode
# through systemd-socket-activate, and sd_notify through a datagram socket the
# test binds itself (tests/notify_listener.py).

load test_helper

setup() {
	common_setup
	: "${top_srcdir:=$BATS_TEST_DIRNAME/..}"
	: "${top_builddir:=$top_srcdir}"
	GOT=$BATS_TEST_TMPDIR/got
	NOTES=$BATS_TEST_TMPDIR/notes
	: >"$BATS_TEST_TMPDIR/srvexample.conf" # built-in defaults, not the installed file
}

teardown() {
	common_teardown
}

# daemon_args: the srvexample command line (after any wrapper) for a daemon
# started here by hand; as root, a user to drop to, as start_daemon does.
daemon_args() {
	local -a wrapper
	read -ra wrapper <<<"${SRVEXAMPLE_WRAPPER:-}"
	DAEMON_ARGS=("${wrapper[@]}" "$SRVEXAMPLE" -f "$BATS_TEST_TMPDIR/srvexample.conf"
		-o log=stderr -o resolve=no)
	if [ "$(id -u)" = 0 ] && [ -n "${DAEMON_USER-nobody}" ]; then
		DAEMON_ARGS+=(-u "${DAEMON_USER:-nobody}")
	fi
}

# activate PORT ARGS...: systemd-socket-activate on 127.0.0.1:PORT with ARGS
# (its options, then the command), in the background, logging to
# $BATS_TEST_TMPDIR/daemon.log; it becomes DAEMON_PID, so the helper's
# teardown stops it.  systemd-socket-activate passes on only a few variables:
# hand the sanitizer settings through.
activate() {
	local port=$1 v
	local -a pass=()
	shift
	for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
		[ -z "${!v:-}" ] || pass+=(-E "$v")
	done
	export PORT=$port DAEMON_LOG=$BATS_TEST_TMPDIR/daemon.log
	systemd-socket-activate -l "127.0.0.1:$port" "${pass[@]}" "$@" \
		</dev/null >"$DAEMON_LOG" 2>&1 3>&- &
	export DAEMON_PID=$!
}

# listening_on PORT: something listens on 127.0.0.1:PORT.
listening_on() {
	[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# make_units: the units as `make` generates them, in $BATS_TEST_TMPDIR/units,
# with @sbindir@ pointing at a stand-in executable: what is checked here is
# the unit files, not the binary.
make_units() {
	local dir=$BATS_TEST_TMPDIR
	mkdir -p "$dir/units" "$dir/sbin"
	printf '#!/bin/sh\n' >"$dir/sbin/srvexample"
	chmod +x "$dir/sbin/srvexample"
	sed -e "s|@sbindir@|$dir/sbin|g" -e "s|@sysconfdir@|/etc|g" \
		-e "s|@runstatedir@|/run|g" -e "s|@PACKAGE_VERSION@|0|g" \
		"$top_srcdir/systemd/srvexample.service.in" >"$dir/units/srvexample.service"
	cp "$top_srcdir/systemd/srvexample.socket" "$dir/units/"
}

# -- the unit files -----------------------------------------------------------

@test "systemd: systemd-analyze verify finds nothing in the service and socket units" {
	need systemd-analyze
	make_units
	run systemd-analyze verify --man=no "$BATS_TEST_TMPDIR/units/srvexample.service" \
		"$BATS_TEST_TMPDIR/units/srvexample.socket"
	assert_output ''
	assert_success
}

@test "systemd: the unit make generated has every placeholder expanded and verifies" {
	need systemd-analyze
	local unit=$top_builddir/systemd/srvexample.service left
	[ -f "$unit" ] || skip "$unit not generated (run make first)"
	run grep -n '@[A-Za-z_]*@' "$unit"
	assert_failure 1
	grep -Eq '^ExecStart=/[^ ]*/srvexample -d$' "$unit"
	mkdir -p "$BATS_TEST_TMPDIR/built"
	cp "$unit" "$top_srcdir/systemd/srvexample.socket" "$BATS_TEST_TMPDIR/built/"
	run systemd-analyze verify --man=no "$BATS_TEST_TMPDIR/built/srvexample.service" \
		"$BATS_TEST_TMPDIR/built/srvexample.socket"
	# Before make install, the binary is missing from sbindir: the one excuse.
	left=$(grep -v -e ' is not executable: No such file' <<<"$output" || true)
	[ -z "$left" ] || fail "systemd-analyze verify: $left"
}

@test "systemd: systemd-analyze security rates the service 1.5 or lower" {
	need systemd-analyze
	systemd-analyze --help 2>&1 | grep -q -- '--offline' ||
		skip "systemd-analyze has no --offline (systemd < 250)"
	make_units
	run systemd-analyze security --offline=true --no-pager \
		"$BATS_TEST_TMPDIR/units/srvexample.service"
	local level
	level=$(sed -n 's/.*Overall exposure level for srvexample\.service: *\([0-9.]*\).*/\1/p' <<<"$output")
	[ -n "$level" ] || fail "no overall exposure level in: $output"
	float_test "$level" '<=' 1.5
}

@test "systemd: the service runs unprivileged on the socket unit's sockets" {
	local unit=$top_srcdir/systemd/srvexample.service.in
	grep -qx 'Type=notify' "$unit"
	grep -qx 'ExecStart=@sbindir@/srvexample -d' "$unit"
	# shellcheck disable=SC2016 # a literal $MAINPID
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit"
	grep -qx 'Restart=on-failure' "$unit"
	grep -qx 'KillMode=mixed' "$unit"
	grep -qx 'User=srvexample' "$unit"
	grep -qx 'Requires=srvexample.socket' "$unit"
	grep -qx 'CapabilityBoundingSet=' "$unit"
	grep -qx 'ListenStream=3456' "$top_srcdir/systemd/srvexample.socket"
	grep -qx 'BindIPv6Only=both' "$top_srcdir/systemd/srvexample.socket"
	grep -Eq '^u srvexample - .* /usr/sbin/nologin$' "$top_srcdir/systemd/srvexample.sysusers"
}

@test "systemd: a bad file fails the start and the reload, never the socket" {
	local unit=$top_srcdir/systemd/srvexample.service.in nofile
	# The check runs before the start and before SIGHUP, in that order.
	grep -qx 'ExecStartPre=@sbindir@/srvexample -n' "$unit"
	run grep -E '^ExecReload=' "$unit"
	assert_line --index 0 'ExecReload=@sbindir@/srvexample -n'
	# shellcheck disable=SC2016 # a literal $MAINPID
	assert_line --index 1 'ExecReload=/bin/kill -HUP $MAINPID'
	# No start limit: hitting it failed srvexample.socket too.
	grep -qx 'StartLimitIntervalSec=0' "$unit"
	grep -Eqx 'RestartSec=[1-9][0-9]*s?' "$unit"
	# max-children 100000 (its maximum) passes the check of srvexample -n.
	nofile=$(sed -n 's/^LimitNOFILE=//p' "$unit")
	[ "$nofile" -ge 100100 ] || fail "LimitNOFILE=$nofile < 100000 children"
	nofile=$(sed -n 's/^LimitSIGPENDING=//p' "$unit")
	[ "$nofile" -ge 100064 ] || fail "LimitSIGPENDING=$nofile < 100000 children"
}

@test "systemd: sysusers.d creates the srvexample user and group" {
	need systemd-sysusers
	local root=$BATS_TEST_TMPDIR/root
	mkdir -p "$root/etc"
	run systemd-sysusers --root="$root" "$top_srcdir/systemd/srvexample.sysusers"
	assert_success
	grep -Eq '^srvexample:x:[0-9]+:[0-9]+:[^:]*:/:/usr/sbin/nologin$' "$root/etc/passwd"
	grep -Eq '^srvexample:x:[0-9]+:' "$root/etc/group"
}

# -- socket activation and inetd mode -----------------------------------------

@test "systemd: socket activation serves on the one socket passed in and binds nothing" {
	need systemd-socket-activate ss
	local port
	port=$(free_port)
	daemon_args
	activate "$port" "${DAEMON_ARGS[@]}" -d
	wait_until "listening_on $port" 5

	# As under systemd, the first client starts the daemon and is served.
	run client --out "$GOT" 'hello, activated\n'
	assert_success
	assert_bytes "$GOT" 'You said:hello, activated\n'
	wait_for_log '^ready: '

	[ "$(log_count '^listening on ')" -eq 1 ]
	grep -qxF "listening on 127.0.0.1 port $port (socket activation)" "$DAEMON_LOG"
	# srvexample is the process systemd-socket-activate exec'd (LISTEN_PID
	# matched), and it listens on that one socket and nothing else.
	run ss -Hltnp
	local mine
	mine=$(grep "pid=$DAEMON_PID," <<<"$output" || true)
	echo "listening sockets of $DAEMON_PID: $mine"
	[ "$(grep -c . <<<"$mine")" -eq 1 ]
	[[ $mine == *" 127.0.0.1:$port "* ]]

	assert_serves
	wait_until "[ \$(log_count ' outcome=ok( |\$)') -eq 2 ]" 5

	stop_daemon
	[ "$DAEMON_STATUS" -eq 0 ]
	grep -q '^exiting' "$BATS_TEST_TMPDIR/daemon.log"
}

@test "systemd: inetd mode serves one client per process (systemd-socket-activate --inetd)" {
	need systemd-socket-activate ss
	local port activator
	port=$(free_port)
	daemon_args
	activate "$port" -a --inetd "${DAEMON_ARGS[@]}" -i
	activator=$DAEMON_PID
	wait_until "listening_on $port" 5

	run client --out "$GOT" 'first\n'
	assert_success
	assert_bytes "$GOT" 'You said:first\n'
	wait_for_log ' outcome=ok( |$)'
	run client --out "$GOT" 'second\r\n'
	assert_success
	assert_bytes "$GOT" 'You said:second\r\n'
	wait_until "[ \$(log_count ' outcome=ok( |\$)') -eq 2 ]" 5

	# The peer is logged; each client had a process of its own, now gone.
	[ "$(log_count '^Connection from .*\[127\.0\.0\.1\] [0-9]+$')" -eq 2 ]
	local pids p
	pids=$(sed -n 's/^end client=127\.0\.0\.1 port=[0-9]* pid=\([0-9]*\) outcome=ok.*/\1/p' "$DAEMON_LOG")
	echo "inetd children: $pids"
	[ "$(sort -u <<<"$pids" | grep -c .)" -eq 2 ]
	for p in $pids; do
		[ "$p" -ne "$activator" ]
		wait_until "! pid_alive $p" 5
	done
	# inetd mode does not listen.
	[ "$(log_count '^listening on ')" -eq 0 ]
}

# -- sd_notify ----------------------------------------------------------------

# notify_listen ADDRESS: run tests/notify_listener.py on ADDRESS (a path or
# @name) until teardown; it writes what it receives to $NOTES.
notify_listen() {
	"$PYTHON" "$BATS_TEST_DIRNAME/notify_listener.py" "$1" "$NOTES" 60 \
		>"$BATS_TEST_TMPDIR/daemon.listener.log" 2>&1 3>&- &
	track_pid $!
	wait_until "grep -qx listening '$NOTES' 2>/dev/null" 5
}

# notes: the datagrams received so far, one a line: "pid=P now=USEC|FIELD=V|...".
notes() {
	awk '/^datagram / { d = substr($0, 10); next }
	     /^\.$/ { print d; d = ""; next }
	     d != "" { d = d "|" $0 }' "$NOTES"
}

# note_count: how many datagrams so far.
note_count() {
	notes | grep -c . || true
}

# wait_note ERE [AFTER]: wait for a datagram after the first AFTER that matches
# ERE; sets NOTE (the datagram) and NOTE_N (its number, from 1).
wait_note() {
	local ere=$1 after=${2:-0} line end
	end=$(($(_now_ms) + 5000))
	while :; do
		line=$(notes | RE=$ere awk -v a="$after" \
			'NR > a && $0 ~ ENVIRON["RE"] { print NR ":" $0; exit }')
		if [ -n "$line" ]; then
			NOTE_N=${line%%:*} NOTE=${line#*:}
			echo "notification $NOTE_N: $NOTE"
			return 0
		fi
		if [ "$(_now_ms)" -ge "$end" ]; then
			echo "no notification matching /$ere/ after $after; received:" >&2
			notes >&2
			return 1
		fi
		sleep 0.02
	done
}

# start_notified NOTIFY_SOCKET [ARGS...]: start_daemon with NOTIFY_SOCKET set.
start_notified() {
	local sock=$1
	shift
	# shellcheck disable=SC2034 # used by start_daemon
	DAEMON_PREFIX=(env "NOTIFY_SOCKET=$sock")
	start_daemon -o resolve=no "$@"
}

@test "systemd: sd_notify READY=1, RELOADING=1 then READY=1, STATUS=, STOPPING=1" {
	need python3
	notify_listen "$BATS_TEST_TMPDIR/notify.sock"
	start_notified "$BATS_TEST_TMPDIR/notify.sock"

	# READY=1 with MAINPID, from the main process, once clients are served.
	wait_note '\|READY=1(\||$)'
	[[ $NOTE == "pid=$DAEMON_PID "* ]]
	[[ "$NOTE|" == *"|MAINPID=$DAEMON_PID|"* ]]
	assert_serves

	# SIGHUP: RELOADING=1 with the current CLOCK_MONOTONIC, then READY=1.
	local n reload now usec
	n=$(note_count)
	signal_daemon HUP
	wait_note '\|RELOADING=1(\||$)' "$n"
	reload=$NOTE_N
	[[ $NOTE =~ ^pid=[0-9]+\ now=([0-9]+) ]]
	now=${BASH_REMATCH[1]}
	[[ "$NOTE|" =~ \|MONOTONIC_USEC=([0-9]+)\| ]] || fail "RELOADING=1 without MONOTONIC_USEC"
	usec=${BASH_REMATCH[1]}
	echo "MONOTONIC_USEC=$usec, received at $now"
	((usec <= now && now - usec < 10000000))
	wait_note '\|READY=1(\||$)' "$reload"
	wait_for_log '^configuration reloaded'

	# SIGUSR1: STATUS= with the counters.  The client served above counts once
	# the parent has reaped its child: ask until it shows.
	wait_until "[ \"\$(stats_value served 2>/dev/null)\" = 1 ] || { daemon_stats >/dev/null; false; }" 5
	n=$(note_count)
	daemon_stats
	wait_note '\|STATUS=' "$n"
	[[ $NOTE =~ \|STATUS=[^|]*served[=:\ ]+1([^0-9]|$) ]] || fail "STATUS= without served=1: $NOTE"

	# SIGTERM: STOPPING=1, then exit 0.
	local pid=$DAEMON_PID
	n=$(note_count)
	signal_daemon TERM
	wait_note '\|STOPPING=1(\||$)' "$n"
	wait_daemon_exit
	[ "$DAEMON_STATUS" -eq 0 ]

	# Every notification came from the main process (NotifyAccess=main).
	local others
	others=$(notes | grep -v "^pid=$pid " || true)
	[ -z "$others" ] || fail "notifications from other processes: $others"
}

@test "systemd: sd_notify to an abstract socket (@name)" {
	need python3
	local name=@srvexample-test-$$-$RANDOM
	notify_listen "$name"
	start_notified "$name"
	wait_note '\|READY=1(\||$)'
	[[ "$NOTE|" == *"|MAINPID=$DAEMON_PID|"* ]]
	local n
	n=$(note_count)
	signal_daemon TERM
	wait_note '\|STOPPING=1(\||$)' "$n"
	wait_daemon_exit
	[ "$DAEMON_STATUS" -eq 0 ]
}

@test "systemd: an unusable NOTIFY_SOCKET is logged and does not stop the daemon" {
	start_notified "$BATS_TEST_TMPDIR/nobody-listens.sock"
	wait_for_log 'NOTIFY_SOCKET'
	assert_serves
}
