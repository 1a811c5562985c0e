#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until are single-quoted on purpose (evaluated later); each @test runs
# in its own subshell, so its assignments are meant to stay there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# resolve-cache: the resolver remembers the name it looked up for a
# client's exact address and tells the parent, which hands it to the next
# children from that address at their fork; they log `name of ADDR from the
# cache` (with -v) and ask nothing.  Off with resolve-cache 0 or resolve no, never behind a balancer,
# forgotten on SIGHUP and after resolve-cache seconds.  Clients come one
# after the other: each waits for its child's end line, so the log's order
# is the children's order.  The name of 127.0.0.1 is whatever the resolver
# of this machine gives (/etc/hosts); it is read from the log, not assumed.

load test_helper

HIT='^name of [0-9a-f.:]+ from the cache$'

# -- helpers local to this file ------------------------------------------------

# serve_one [CLIENT-ARGS...]: a client (from 127.0.0.1 unless --source says
# otherwise) is answered; waits for its child's end line.  Sets CPORT, the
# client's port.
serve_one() {
	run --separate-stderr client --timeout 10 "$@" 'hello\n'
	assert_success
	assert_output 'You said:hello'
	CPORT=$(report_value port)
	[ -n "$CPORT" ] || fail "no client port in: $stderr"
	wait_for_log "^end client=[0-9.]+ port=$CPORT pid=[0-9]+ outcome=ok " 10
}

# pair: two clients from 127.0.0.1, one right after the other, from one
# client.py, so that no interpreter start-up comes between them; waits for
# both end lines.  Sets PAIR_MS, how long it took from before the first
# connection to after the second (the first child's report is sent after
# that start and the second child is forked before that end).
pair() {
	local n t0 ends='^end client=127\.0\.0\.1 .* outcome=ok '
	n=$(log_count "$ends")
	t0=$(_now_ms)
	run --separate-stderr client --timeout 10 --repeat 2 \
	    --expect 'You said:hello\n' 'hello\n'
	PAIR_MS=$(($(_now_ms) - t0))
	assert_success
	wait_until "[ \$(log_count '$ends') -ge $((n + 2)) ]" 10
}

# hits: how many `name of ... from the cache` lines the log has.
hits() {
	log_count "$HIT"
}

# conn_name PORT: NAME of the `Connection from NAME [IP] PORT` line.
conn_name() {
	sed -n "s/^Connection from \\(.*\\) \\[[0-9a-f.:]*\\] $1\$/\\1/p" "$DAEMON_LOG"
}

# line_of REGEX: the number of the last log line matching REGEX.
line_of() {
	grep -Ean -- "$1" "$DAEMON_LOG" | tail -n 1 | cut -d: -f1
}

# assert_hits N: the log has exactly N cache lines.
assert_hits() {
	local n
	n=$(hits)
	[ "$n" -eq "$1" ] || fail "expected $1 '... from the cache' line(s), found $n"
}

# -- the name is remembered ----------------------------------------------------

@test "resolve-cache: by default the second child from an address takes the first one's name" {
	local p1 p2 name1 name2 hit end1 conn2
	start_daemon -v
	serve_one
	p1=$CPORT
	assert_hits 0
	name1=$(conn_name "$p1")
	[ -n "$name1" ] || fail "no Connection from line for port $p1"
	serve_one
	p2=$CPORT
	[ "$p2" != "$p1" ]
	assert_hits 1
	[ "$(log_count '^name of 127\.0\.0\.1 from the cache$')" -eq 1 ]
	name2=$(conn_name "$p2")
	assert_equal "$name2" "$name1"
	# The line is the second child's, before its Connection from line.
	hit=$(line_of "$HIT")
	end1=$(line_of "^end client=127\\.0\\.0\\.1 port=$p1 ")
	conn2=$(line_of "^Connection from .* \\[127\\.0\\.0\\.1\\] $p2\$")
	[ "$hit" -gt "$end1" ] && [ "$hit" -lt "$conn2" ] ||
	    fail "cache line $hit is not between line $end1 (end of the first) and line $conn2"
}

@test "resolve-cache: a remembered name comes from the parent: with the resolver stopped, the child still has it at once" {
	local worker name1
	start_daemon -v
	serve_one
	name1=$(conn_name "$CPORT")
	[ -n "$name1" ] || fail "no Connection from line for port $CPORT"
	[ "$name1" != 127.0.0.1 ] || skip "127.0.0.1 has no name on this machine"
	# The resolver's worker is the parent's only grandchild: the child of
	# the resolver's supervisor (a served child may still be exiting).
	worker=$(for c in $(children_of "$DAEMON_PID"); do children_of "$c"; done)
	[ -n "$worker" ] || fail "no resolver worker"
	kill -STOP "$worker"
	# A child that asked would wait 2 s for nothing and log the address.
	serve_one
	kill -CONT "$worker"
	assert_equal "$(conn_name "$CPORT")" "$name1"
	assert_hits 1
}

@test "resolve-cache: only the exact address: 127.0.0.2 does not get 127.0.0.1's name" {
	start_daemon -v
	serve_one
	serve_one --source 127.0.0.2
	assert_hits 0
	serve_one
	assert_hits 1
	[ "$(log_count '^name of 127\.0\.0\.1 from the cache$')" -eq 1 ]
}

# -- no memory ------------------------------------------------------------------

@test "resolve-cache: 0 turns it off: every child looks up" {
	start_daemon -v -o resolve-cache=0
	for _ in 1 2 3; do
		serve_one
	done
	[ "$(log_count '^Connection from .* \[127\.0\.0\.1\] [0-9]+$')" -eq 3 ]
	assert_hits 0
}

@test "resolve-cache: with resolve no nothing is looked up or remembered" {
	start_daemon -v -o resolve=no
	for _ in 1 2 3; do
		serve_one
		wait_for_log "^Connection from 127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\] $CPORT\$"
	done
	assert_hits 0
}

@test "resolve-cache: behind a balancer every child looks up, nothing is remembered" {
	local p
	start_daemon -v -o proxy-protocol=yes -o proxy-from=127.0.0.1
	# The real client in the header is 127.0.0.1, the balancer's own
	# address too: a memory keyed by either would be hit the second time.
	for p in 5555 5556 5557; do
		run --separate-stderr client --timeout 10 \
		    "PROXY TCP4 127.0.0.1 127.0.0.1 $p $PORT\\r\\nhello\\n"
		assert_success
		assert_output 'You said:hello'
		wait_for_log "^end client=127\\.0\\.0\\.1 port=$p pid=[0-9]+ outcome=ok " 10
		wait_for_log "^Connection from .* \\[127\\.0\\.0\\.1\\] $p\$"
	done
	assert_hits 0
}

# -- forgetting -----------------------------------------------------------------

@test "resolve-cache: a name is forgotten after resolve-cache seconds" {
	start_daemon -v -o resolve-cache=1
	pair
	[ "$PAIR_MS" -lt 1000 ] ||
	    skip "two clients took $PAIR_MS ms: too slow to test a 1 s memory"
	assert_hits 1
	# A sleep, not synchronisation: the expiry is the behaviour under test.
	# The first child reported its name before its client got an answer, so
	# 1.2 s from now is more than 1 s after the report.
	sleep 1.2
	# The third child looks up again (no new cache line), and the fourth
	# takes the name that lookup found.
	pair
	[ "$PAIR_MS" -lt 1000 ] ||
	    skip "two clients took $PAIR_MS ms: too slow to test a 1 s memory"
	assert_hits 2
}

@test "resolve-cache: SIGHUP forgets every name" {
	start_daemon -v
	serve_one
	serve_one
	assert_hits 1
	signal_daemon HUP
	wait_for_log '^configuration reloaded$'
	serve_one
	assert_hits 1
	# The lookup after the reload is remembered again.
	serve_one
	assert_hits 2
}
