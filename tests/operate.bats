#!/usr/bin/env bats
# operate.bats: running srvexample at scale: the accept queue it parks
# clients in (queued=), the metrics file node_exporter reads, the drain
# before a stop (shutdown-delay) and HAProxy's agent check (agent-port).

# status, output and lines come from bats' run; H_* from test_helper.
# shellcheck disable=SC2154,SC2034
load test_helper

setup() {
	common_setup
	NOTES=$BATS_TEST_TMPDIR/notes
	declare -gA H_PID H_GO H_OUT H_PORT B_PID B_OUT B_ERR B_STATUS
}

teardown() {
	common_teardown
}

# need COMMAND...: skip the test when a command is missing.
need() {
	local cmd
	for cmd; do
		command -v "$cmd" >/dev/null 2>&1 || skip "$cmd not installed"
	done
}

# notify_listen SOCKET: receive sd_notify datagrams into $NOTES.
notify_listen() {
	"$PYTHON" "$BATS_TEST_DIRNAME/notify_listener.py" "$1" "$NOTES" 60 \
		>"$BATS_TEST_TMPDIR/listener.log" 2>&1 3>&- &
	track_pid $!
	wait_until "grep -qx listening '$NOTES' 2>/dev/null" 5
}

# last_status: the last STATUS= value received.
last_status() {
	grep -a '^STATUS=' "$NOTES" | tail -n 1 | sed 's/^STATUS=//'
}

@test "queued: SIGUSR1 and STATUS= count the clients waiting in the backlog" {
	notify_listen "$BATS_TEST_TMPDIR/notify.sock"
	DAEMON_PREFIX=(env "NOTIFY_SOCKET=$BATS_TEST_TMPDIR/notify.sock")
	start_daemon -o resolve=no -o max-children=1 -o max-per-source=0
	hold busy 'x\n'
	wait_until '[ "$(nchildren)" -eq 1 ]' 5
	run daemon_stats
	assert_output --regexp ' queued=0$'
	# Three more connect: the handshake completes in the kernel, and at
	# max-children they wait in the accept queue.
	hold q1 'x\n'
	hold q2 'x\n'
	hold q3 'x\n'
	run daemon_stats
	assert_output --regexp ' active=1 .* queued=3$'
	wait_until '[[ "$(last_status)" == *" queued=3" ]]' 5
	# Freed one at a time, each is served in turn and the queue shrinks.
	release busy
	wait_until 'daemon_stats | grep -q " queued=2$"' 5
	release q1
	release q2
	release q3
	wait_until 'daemon_stats | grep -q " active=0 .* queued=0$"' 5
	[ "$(stats_value served)" -eq 4 ]
}

# nv LINE...: -nv on a file of these lines (and user nobody); sets output.
nv() {
	printf '%s\n' 'user nobody' "$@" >"$BATS_TEST_TMPDIR/ops.conf"
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$BATS_TEST_TMPDIR/ops.conf"
}

# bad LINE REGEX: -n rejects LINE (on line 2) with FILE:2: and REGEX.
bad() {
	nv "$1"
	[ "$status" -eq 1 ] || fail "'$1': exit $status, expected 1; $stderr"
	assert_stderr "^srvexample: $BATS_TEST_TMPDIR/ops\\.conf:2: $2\$"
}

@test "keywords: -nv prints shutdown-delay, agent-port, metrics-file and metrics-interval with their defaults" {
	nv
	assert_success
	assert_line 'shutdown-delay 0'
	assert_line 'agent-port 0'
	assert_line 'metrics-file none'
	assert_line 'metrics-interval 15'
	nv 'shutdown-delay 3600' 'agent-port 65535' \
	    'metrics-file /var/lib/prometheus/node-exporter/srvexample.prom' \
	    'metrics-interval 86400'
	assert_success
	assert_line 'shutdown-delay 3600'
	assert_line 'agent-port 65535'
	assert_line 'metrics-file /var/lib/prometheus/node-exporter/srvexample.prom'
	assert_line 'metrics-interval 86400'
	nv 'metrics-file /x.prom' 'metrics-file none'
	assert_success
	assert_line 'metrics-file none'
}

@test "keywords: out-of-range and bad values are errors naming them" {
	bad 'shutdown-delay 3601' 'shutdown-delay: "3601" is too large'
	bad 'shutdown-delay -1' 'shutdown-delay: .*"-1".*'
	bad 'agent-port 65536' 'agent-port: "65536" is too large'
	bad 'metrics-interval 0' 'metrics-interval: "0" is too small'
	bad 'metrics-interval 86401' 'metrics-interval: "86401" is too large'
	bad 'metrics-file srvexample.prom' '.*absolute.*"srvexample\.prom"'
	# The agent needs a port of its own.
	nv 'port 4000' 'agent-port 4000'
	[ "$status" -eq 1 ] || fail "agent-port = port accepted: $output"
	assert_stderr 'agent-port 4000 is the port clients use'
}

@test "keywords: agent-port and metrics-file need a restart; shutdown-delay and metrics-interval do not" {
	printf '%s\n' 'agent-port 0' 'metrics-file none' >"$BATS_TEST_TMPDIR/srvexample.conf"
	start_daemon -o resolve=no
	printf '%s\n' "agent-port $(free_port)" "metrics-file $BATS_TEST_TMPDIR/m.prom" \
	    'shutdown-delay 5' 'metrics-interval 60' >"$BATS_TEST_TMPDIR/srvexample.conf"
	signal_daemon HUP
	wait_for_log '^configuration reloaded'
	[ "$(log_count '^agent-port changed: takes effect after a restart')" -eq 1 ]
	[ "$(log_count '^metrics-file changed: takes effect after a restart')" -eq 1 ]
	[ "$(log_count '^(shutdown-delay|metrics-interval) changed')" -eq 0 ]
	[ ! -e "$BATS_TEST_TMPDIR/m.prom" ]
	assert_serves
}
