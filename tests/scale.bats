#!/usr/bin/env bats
# shellcheck shell=bash
# Several instances on one port (reuse-port).  The rest of issue 7 (PROXY
# protocol, restarts under load) is not built yet.

load test_helper

@test "reuse-port: two instances share one port and both serve" {
	local second_log=$BATS_TEST_TMPDIR/second.log pid2 i
	local -a args
	mapfile -t args < <(user_args)
	start_daemon -o reuse-port=yes -o resolve=no
	"$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 -p "$PORT" -o reuse-port=yes \
	    -o resolve=no "${args[@]}" 2>"$second_log" 3>&- &
	pid2=$!
	track_pid "$pid2"
	wait_until "grep -aq '^ready: ' '$second_log'" 10 ||
	    fail "second instance not ready: $(cat "$second_log")"
	# The kernel spreads connections over both listeners by a hash of the
	# client's port: within 200 clients each instance gets some.
	for i in $(seq 200); do
		run client --expect "You said:c$i\\n" "c$i\\n"
		assert_success
		if grep -aq '^end client=.* outcome=ok' "$DAEMON_LOG" &&
		    grep -aq '^end client=.* outcome=ok' "$second_log"; then
			break
		fi
	done
	wait_until "grep -aq '^end client=.* outcome=ok' '$DAEMON_LOG'" 2
	wait_until "grep -aq '^end client=.* outcome=ok' '$second_log'" 2
	kill -TERM "$pid2"
	wait_until "! pid_alive $pid2" 10
}

@test "reuse-port: without it a second instance on the port is refused" {
	local -a args
	mapfile -t args < <(user_args)
	start_daemon -o resolve=no
	run -1 "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 -p "$PORT" "${args[@]}"
	assert_output --partial "Address already in use"
	assert_serves
}
