#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until are single-quoted on purpose (evaluated later).
# shellcheck disable=SC2154,SC2016
# Logging: priorities when stderr is the journal (the "<N>" prefixes of
# sd-daemon(3)), fewer per-client lines with log-clients problems, and the
# count of refusal lines held back by the rate limit, logged when its window
# ends.  Every test starts the real daemon with -d.

load test_helper

# -- helpers local to this file ---------------------------------------------

# journal_log: make the file the next start_daemon logs to and export
# JOURNAL_STREAM naming it, as systemd names the stream it gives a service
# (start_daemon's redirection truncates the file but keeps its inode).
journal_log() {
	local log=$BATS_TEST_TMPDIR/daemon.log
	: >"$log"
	JOURNAL_STREAM=$(stat -c '%d:%i' "$log")
	export JOURNAL_STREAM
}

# burst N ADDRESS: N clients from ADDRESS, one after another, each to its end.
burst() {
	local i
	for ((i = 0; i < $1; i++)); do
		client --timeout 5 --source "$2" 'x\n' >/dev/null 2>&1 || return 1
	done
}

# held_back: the sum of the counts of the held-back refusal lines so far.
held_back() {
	sed -n 's/^refusals not logged in the last [0-9]* s: \([0-9]*\)$/\1/p' \
	    "$DAEMON_LOG" | awk '{ n += $1 } END { print n + 0 }'
}

# -- the journal's priorities -------------------------------------------------

@test "journal: with JOURNAL_STREAM naming stderr, every line starts with its priority" {
	journal_log
	start_daemon -o resolve=no -o max-line=16
	assert_serves
	run --separate-stderr client --timeout 5 'longer than sixteen bytes\n'
	assert_output 'Error: line too long'
	wait_for_log '^<6>end client=127\.0\.0\.1 .* outcome=too-long '
	grep -Eaq "^<6>ready: srvexample " "$DAEMON_LOG"
	grep -Eaq '^<6>Connection from 127\.0\.0\.1 \[127\.0\.0\.1\] [0-9]+$' "$DAEMON_LOG"
	grep -Eaq '^<6>end client=127\.0\.0\.1 .* outcome=ok ' "$DAEMON_LOG"
	# No line goes without a priority.
	run grep -Eav '^<[0-7]>' "$DAEMON_LOG"
	assert_output ''
}

@test "journal: configuration errors at startup and on reload are at LOG_ERR (<3>)" {
	make_world_tmpdir
	CONF=$WORLD_TMPDIR/srvexample.conf
	printf 'timeout 5\nbogus yes\n' >"$CONF"
	journal_log
	DAEMON_LOG=$BATS_TEST_TMPDIR/daemon.log
	status=0
	"$SRVEXAMPLE" -d -f "$CONF" -p "$(free_port)" -u nobody \
	    2>"$DAEMON_LOG" || status=$?
	[ "$status" -eq 1 ]
	grep -Fxq "<3>srvexample: $CONF:2: unknown keyword \"bogus\"" "$DAEMON_LOG"

	printf 'timeout 5\n' >"$CONF"
	chmod 644 "$CONF"
	journal_log
	start_daemon -o resolve=no
	printf 'timeout 5\nbogus yes\n' >"$CONF"
	signal_daemon HUP
	wait_for_log '^<[0-7]>reload failed, keeping the running configuration$'
	grep -Fxq "<3>$CONF:2: unknown keyword \"bogus\"" "$DAEMON_LOG"
	assert_serves
}

@test "journal: a JOURNAL_STREAM that names another file gets no prefixes" {
	: >"$BATS_TEST_TMPDIR/elsewhere"
	JOURNAL_STREAM=$(stat -c '%d:%i' "$BATS_TEST_TMPDIR/elsewhere")
	export JOURNAL_STREAM
	start_daemon -o resolve=no
	assert_serves
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=ok '
	grep -aq '^ready: ' "$DAEMON_LOG"
	[ "$(log_count '^<')" -eq 0 ]
	[ ! -s "$BATS_TEST_TMPDIR/elsewhere" ]
}

# -- log-clients ------------------------------------------------------------

@test "log-clients problems: no lines for ok and eof clients, an end line for the others" {
	start_daemon -o resolve=no -o log-clients=problems -o max-line=16 \
	    -o deny=127.0.0.2
	assert_serves
	run client --timeout 5 ''
	no_children
	run --separate-stderr client --timeout 5 'longer than sixteen bytes\n'
	assert_output 'Error: line too long'
	run client --timeout 5 --source 127.0.0.2 'x\n'
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=too-long '
	wait_for_log '^end client=127\.0\.0\.2 .* outcome=denied '
	no_children
	daemon_stats
	[ "$(stats_value served)" -eq 1 ]
	[ "$(stats_value eof)" -eq 1 ]
	[ "$(log_count '^Connection from ')" -eq 0 ]
	[ "$(log_count 'outcome=(ok|eof) ')" -eq 0 ]
}

@test "log-clients all (the default): Connection from and end lines for every client" {
	start_daemon -o resolve=no
	assert_serves
	run client --timeout 5 ''
	no_children
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=eof '
	[ "$(log_count '^Connection from 127\.0\.0\.1 ')" -eq 2 ]
	[ "$(log_count '^end client=127\.0\.0\.1 .* outcome=ok ')" -eq 1 ]
}

@test "log-clients: a bad value is an error naming it" {
	run --separate-stderr "$SRVEXAMPLE" -n -f /dev/null -u nobody -o log-clients=some
	assert_failure
	assert_stderr_line 'srvexample: -o log-clients=some: expected all or problems, not "some"'
}

# -- held-back refusal lines --------------------------------------------------

@test "rate limit: the refusals held back are counted in a line of their own when the window ends" {
	start_daemon -o resolve=no -o deny=127.0.0.2
	burst 6 127.0.0.2
	# The count comes without another refusal to carry it.
	wait_for_log '^refusals not logged in the last 5 s: [0-9]+$' 15
	# Every refusal is either logged or counted, none twice.
	[ $(( $(log_count 'outcome=denied ') + $(held_back) )) -eq 6 ]
	# The next refusal starts a new window: logged, after the count.
	burst 1 127.0.0.2
	wait_until '[ "$(log_count "outcome=denied ")" -ge 2 ]' 5
	tail -n 1 "$DAEMON_LOG" | grep -Eq 'outcome=denied '
	[ $(( $(log_count 'outcome=denied ') + $(held_back) )) -eq 7 ]
	assert_serves
}

@test "rate limit: a count still held back at exit is logged before exiting" {
	start_daemon -o resolve=no -o deny=127.0.0.2
	burst 3 127.0.0.2
	stop_daemon
	cat "$DAEMON_LOG"
	[ $(( $(log_count 'outcome=denied ') + $(held_back) )) -eq 3 ]
	[ "$(log_count '^refusals not logged in the last [0-9]+ s: [0-9]+$')" -ge 1 ]
	tail -n 1 "$DAEMON_LOG" | grep -qx 'exiting'
}
