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
