#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until and stays_true are single-quoted on purpose (evaluated later);
# each @test runs in its own subshell, so its assignments are meant to stay
# there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# Limits (issue 3): max-children queueing, max-per-source with source-prefix,
# allow/deny and the timeout deadline.  Every test ends by checking that a
# normal client is still answered.  (Crashing and hostile clients:
# hostile.bats.)

load test_helper

# -- helpers local to this file (test_helper.bash has the shared ones) --------

# bg_port NAME: the local port of background client NAME.
bg_port() {
	sed -n 's/^client: connected local=[^ ]* port=\([0-9]*\)$/\1/p' "${B_ERR[$1]}"
}

# stays_true 'CONDITION' SECONDS: CONDITION holds throughout SECONDS (polled);
# fails as soon as it turns false.  Used to show that something does NOT
# happen, which no finite wait can prove otherwise.
stays_true() {
	local end
	end=$(($(_now_ms) + $(_secs_to_ms "$2")))
	while [ "$(_now_ms)" -lt "$end" ]; do
		if ! eval "$1"; then
			echo "stays_true: became false: $1" >&2
			return 1
		fi
		sleep 0.05
	done
}

# -- max-children -------------------------------------------------------------

@test "max-children: a client beyond the limit waits in the backlog until a child exits" {
	start_daemon -o max-children=2 -o resolve=no
	hold a 'a\n'
	hold b 'b\n'
	wait_until '[ "$(nchildren)" -eq 2 ]'
	daemon_stats
	[ "$(stats_value active)" -eq 2 ]

	bg c --timeout 20 'third\n'
	port_c=$(bg_port c)
	[ -n "$port_c" ]
	# Connected (kernel backlog), but not accepted: no child, no answer.
	stays_true "pid_alive ${B_PID[c]} && [ \"\$(nchildren)\" -eq 2 ] &&
	    ! grep -aq '\\] $port_c\$' '$DAEMON_LOG'" 1
	daemon_stats
	[ "$(stats_value active)" -eq 2 ]

	release a
	assert_bytes "${H_OUT[a]}" 'You said:a\n'
	bg_wait c 5
	[ "${B_STATUS[c]}" -eq 0 ]
	assert_bytes "${B_OUT[c]}" 'You said:third\n'
	grep -Eaq "^Connection from 127\.0\.0\.1 \[127\.0\.0\.1\] $port_c\$" "$DAEMON_LOG"

	# b still holds its slot; the count is exact after the exits.
	wait_until '[ "$(nchildren)" -eq 1 ]'
	daemon_stats
	[ "$(stats_value active)" -eq 1 ]
	assert_serves
	release b
	assert_bytes "${H_OUT[b]}" 'You said:b\n'
	no_children
	daemon_stats
	[ "$(stats_value active)" -eq 0 ]
	[ "$(stats_value served)" -eq 4 ]
	[ "$(stats_value eof)" -eq 0 ]
}

@test "max-children: queued clients are served in the order they connected" {
	start_daemon -o max-children=2 -o resolve=no
	hold a 'a\n'
	hold b 'b\n'
	wait_until '[ "$(nchildren)" -eq 2 ]'
	for q in q1 q2 q3 q4; do
		bg "$q" --timeout 20 "$q\\n"
	done
	stays_true "[ \"\$(nchildren)\" -eq 2 ] && pid_alive ${B_PID[q1]}" 0.5

	release a
	for q in q1 q2 q3 q4; do
		bg_wait "$q" 10
		[ "${B_STATUS[$q]}" -eq 0 ]
		assert_bytes "${B_OUT[$q]}" "You said:$q\\n"
	done
	want=$(for q in q1 q2 q3 q4; do bg_port "$q"; done)
	got=$(grep -a '^Connection from ' "$DAEMON_LOG" | awk '{ print $NF }' |
	    grep -Fx -e "$want")
	[ "$got" = "$want" ] ||
	    fail "served in order '${got//$'\n'/ }', connected in order '${want//$'\n'/ }'"
	release b
	assert_serves
}

@test "max-children: a child killed from outside frees its slot for the backlog" {
	start_daemon -o max-children=1 -o crash-penalty=0 -o resolve=no
	hold a
	pid_a=$(child_for_port "${H_PORT[a]}")
	bg w --timeout 20 'waiting\n'
	stays_true "pid_alive ${B_PID[w]} && [ \"\$(nchildren)\" -eq 1 ]" 0.5
	kill -KILL "$pid_a"
	bg_wait w 5
	[ "${B_STATUS[w]}" -eq 0 ]
	assert_bytes "${B_OUT[w]}" 'You said:waiting\n'
	assert_serves
	no_children
	daemon_stats
	[ "$(stats_value active)" -eq 0 ]
	[ "$(stats_value served)" -eq 2 ]
}

# -- max-per-source and source-prefix -------------------------------------------

@test "max-per-source: the client beyond the limit gets one Error line at once; others are served" {
	start_daemon -o max-per-source=2 -o resolve=no
	hold a 'a\n'
	hold b 'b\n'
	wait_until '[ "$(nchildren)" -eq 2 ]'

	run --separate-stderr client --timeout 5 'third\n'
	assert_success
	assert_output 'Error: too many connections from your address'
	float_test "$(report_value eof-at)" '<' 0.5
	wait_for_log "^end client=127\.0\.0\.1 port=[0-9]+ pid=$DAEMON_PID outcome=refused reason=max-per-source in=0 out=0 "
	# Refused by the parent: no child was forked for it.
	[ "$(nchildren)" -eq 2 ]

	# Another source is not affected.
	assert_serves --source 127.0.0.2

	# Freed when a held child exits.
	pid_a=$(child_for_port "${H_PORT[a]}")
	release a
	wait_until "! pid_alive $pid_a"
	assert_serves
	daemon_stats
	[ "$(stats_value refused)" -eq 1 ]
	grep -Eaq '^refusals: max-per-source=1 ' "$DAEMON_LOG"
	release b
}

@test "max-per-source: a held child killed with SIGKILL leaks no slot" {
	start_daemon -o max-per-source=2 -o crash-penalty=0 -o resolve=no
	hold a
	hold b
	pid_a=$(child_for_port "${H_PORT[a]}")
	pid_b=$(child_for_port "${H_PORT[b]}")
	run --separate-stderr client --timeout 5 'x\n'
	assert_output 'Error: too many connections from your address'

	kill -KILL "$pid_a"
	wait_until "! pid_alive $pid_a"
	assert_serves
	# A child counts until it has exited, a while after its answer (long,
	# under valgrind): wait for that one to be gone, b alone left.
	wait_until '[ "$(nchildren)" -eq 1 ]'
	# Exactly one slot came back: one more holder fits, the next is refused.
	hold c
	child_for_port "${H_PORT[c]}" >/dev/null
	run --separate-stderr client --timeout 5 'y\n'
	assert_output 'Error: too many connections from your address'

	kill -KILL "$pid_b" "$(child_for_port "${H_PORT[c]}")"
	no_children
	assert_serves
	no_children	# the last one counts once it has exited
	daemon_stats
	[ "$(stats_value active)" -eq 0 ]
	[ "$(stats_value refused)" -eq 2 ]
}

@test "max-per-source: source-prefix 24:64 makes 127.0.0.1 and 127.0.0.2 one source" {
	start_daemon -o max-per-source=2 -o source-prefix=24:64 -o resolve=no
	hold a 'a\n'
	hold b --source 127.0.0.2 'b\n'
	wait_until '[ "$(nchildren)" -eq 2 ]'
	run --separate-stderr client --timeout 5 --source 127.0.0.2 'x\n'
	assert_output 'Error: too many connections from your address'
	run --separate-stderr client --timeout 5 'x\n'
	assert_output 'Error: too many connections from your address'
	release a
	wait_until '[ "$(nchildren)" -eq 1 ]'
	assert_serves --source 127.0.0.2
	release b
	no_children		# both answered children have exited
	assert_serves
}

# -- allow and deny -----------------------------------------------------------

@test "deny: a denied client gets no reply, a clean EOF, and is logged" {
	start_daemon -o deny=127.0.0.2 -o resolve=no
	run --separate-stderr client --timeout 5 --source 127.0.0.2 'hello\n'
	assert_success                  # 0: EOF; a reset would be 3
	assert_output ''
	[[ $stderr == *"client: eof received=0 "* ]]
	float_test "$(report_value eof-at)" '<' 0.5
	wait_for_log "^end client=127\.0\.0\.2 port=[0-9]+ pid=$DAEMON_PID outcome=denied in=0 out=0 "
	[ "$(log_count '^Connection from .*\[127\.0\.0\.2\]')" -eq 0 ]
	assert_serves
	no_children		# served counts when the child has exited
	daemon_stats
	[ "$(stats_value denied)" -eq 1 ]
	[ "$(stats_value served)" -eq 1 ]
}

@test "allow: with only allow=127.0.0.1, 127.0.0.2 is denied" {
	start_daemon -o allow=127.0.0.1 -o resolve=no
	run --separate-stderr client --timeout 5 --source 127.0.0.2 'hello\n'
	assert_success
	assert_output ''
	wait_for_log '^end client=127\.0\.0\.2 .* outcome=denied '
	assert_serves
}

@test "allow/deny: the first matching rule wins" {
	start_daemon -o allow=127.0.0.2 -o deny=127.0.0.0/8 -o resolve=no
	assert_serves --source 127.0.0.2
	run --separate-stderr client --timeout 5 'hello\n'
	assert_success
	assert_output ''
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=denied '
	assert_serves --source 127.0.0.2
}

@test "deny: a denied client that keeps sending gets EOF, not a reset (lingering)" {
	start_daemon -o deny=127.0.0.2 -o resolve=no
	run --separate-stderr client --timeout 5 --source 127.0.0.2 --keep-sending 61440 'hello\n'
	assert_success
	assert_output ''
	refute_stderr 'send-error'
	assert_serves
}

@test "deny: IPv6 rules with a prefix" {
	require_ipv6
	start_daemon -l ::1 -o deny=::/1 -o resolve=no
	run --separate-stderr client --host ::1 --timeout 5 'hello\n'
	assert_success
	assert_output ''
	wait_for_log '^end client=::1 .* outcome=denied '
	assert_serves
	daemon_stats
	[ "$(stats_value denied)" -eq 1 ]
}

@test "deny: every denial is counted even when the log lines are rate-limited" {
	start_daemon -o deny=127.0.0.2 -o resolve=no
	run --separate-stderr client --repeat 20 --parallel 4 --source 127.0.0.2 --timeout 5 --expect '' 'x\n'
	assert_success
	daemon_stats
	[ "$(stats_value denied)" -eq 20 ]
	n=$(log_count 'outcome=denied')
	[ "$n" -ge 1 ] && [ "$n" -le 3 ] || fail "$n denial lines for 20 denials (want 1..3)"
	assert_serves
}

# -- the timeout deadline -------------------------------------------------------

@test "timeout: a client dripping bytes is cut at the deadline, not kept alive" {
	start_daemon -o timeout=2 -o resolve=no
	run --separate-stderr client --timeout 10 --drip 0.3 --stop-on-eof \
	    'abcdefghijklmnopqrstuvwxyz'
	assert_success
	assert_output 'Error: timeout'
	t=$(report_value eof-at)
	float_test "$t" '>=' 1.5
	float_test "$t" '<=' 3.5
	# It was still sending when cut: more bytes were due.
	sent=$(report_value sent)
	[ "$sent" -ge 4 ] && [ "$sent" -lt 26 ]
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=timeout '
	assert_serves
	no_children
	daemon_stats
	[ "$(stats_value timeouts)" -eq 1 ]
}
