#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until and stays_true are single-quoted on purpose (evaluated later);
# each @test runs in its own subshell, so its assignments are meant to stay
# there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# Hostile clients (issue 3): children that crash (crash-penalty), lingering
# close, floods, slowloris, huge lines, binary garbage and resets
# mid-request.  Every test ends by checking that a normal client is still
# answered.  (Limits and access rules: limits.bats.)

load test_helper

# -- helpers local to this file (test_helper.bash has the shared ones) --------

# assert_no_zombies: the daemon has no unreaped child.
assert_no_zombies() {
	local z
	z=$(zombies_of "$DAEMON_PID")
	[ -z "$z" ] || fail "zombie children of $DAEMON_PID: $z"
}

# -- crash-penalty --------------------------------------------------------------

@test "crash-penalty: a child killed by SIGSEGV is logged and its source refused" {
	[ -z "${SRVEXAMPLE_VALGRIND:-}" ] || skip "under valgrind the process title of a child is not in its cmdline"
	ulimit -c 0
	start_daemon -o resolve=no
	hold a
	pid_a=$(child_for_port "${H_PORT[a]}")
	grep -aq "port ${H_PORT[a]}" "/proc/$pid_a/cmdline"
	kill -SEGV "$pid_a"
	wait_for_log "^child $pid_a \(client 127\.0\.0\.1\) killed by signal SIGSEGV, refusing 127\.0\.0\.1 for 60 s$"

	run --separate-stderr client --timeout 5 'hello\n'
	assert_success
	assert_output 'Error: try again later'
	float_test "$(report_value eof-at)" '<' 0.5
	wait_for_log "^end client=127\.0\.0\.1 .* outcome=refused reason=crash-penalty "

	assert_serves --source 127.0.0.2
	no_children
	daemon_stats
	[ "$(stats_value crashed)" -eq 1 ]
	[ "$(stats_value refused)" -eq 1 ]
	[ "$(stats_value served)" -eq 1 ]
}

@test "crash-penalty: 0 turns it off" {
	ulimit -c 0
	start_daemon -o crash-penalty=0 -o resolve=no
	hold a
	pid_a=$(child_for_port "${H_PORT[a]}")
	kill -SEGV "$pid_a"
	wait_for_log "^child $pid_a \(client 127\.0\.0\.1\) killed by signal SIGSEGV"
	assert_serves
	daemon_stats
	[ "$(stats_value crashed)" -eq 1 ]
	[ "$(stats_value refused)" -eq 0 ]
	# With the penalty off, the log must not claim a refusal.
	line=$(grep -a "^child $pid_a " "$DAEMON_LOG")
	[[ $line != *refusing* ]] || fail "penalty off, yet the log says: $line"
}

@test "crash-penalty: a child the parent terminates at shutdown is not penalised" {
	start_daemon -o grace=0 -o resolve=no
	hold a
	pid_a=$(child_for_port "${H_PORT[a]}")
	signal_daemon TERM
	wait_daemon_exit 5
	[ "$DAEMON_STATUS" -eq 0 ]
	if pid_alive "$pid_a"; then fail "child $pid_a outlived the daemon"; fi
	[ "$(log_count 'killed by signal')" -eq 0 ]
	grep -aq '^grace period over, stopping 1 children$' "$DAEMON_LOG"
}

@test "crash-penalty: a child killed by its watchdog (SIGALRM) is a timeout, not a crash" {
	start_daemon -o timeout=1 -o resolve=no
	hold a
	pid_a=$(child_for_port "${H_PORT[a]}")
	# Stopped, the child cannot meet its own deadline; its watchdog alarm
	# (timeout + 2 s) becomes pending and kills it when it continues.
	kill -STOP "$pid_a"
	wait_until "(( 0x\$(proc_status $pid_a ShdPnd) & 0x2000 ))" 6
	kill -CONT "$pid_a"
	wait_for_log "^child $pid_a \(client 127\.0\.0\.1\) stopped by its watchdog$"
	[ "$(log_count 'killed by signal')" -eq 0 ]
	assert_serves
	no_children
	daemon_stats
	[ "$(stats_value timeouts)" -eq 1 ]
	[ "$(stats_value crashed)" -eq 0 ]
	[ "$(stats_value refused)" -eq 0 ]
}

# -- lingering close --------------------------------------------------------------

@test "lingering close: a line followed by 60 KB still sent gets its answer, no reset" {
	start_daemon -o resolve=no
	for _ in 1 2 3; do
		run --separate-stderr client --timeout 10 --keep-sending 61440 'hello\n'
		assert_success
		assert_output 'You said:hello'
		refute_stderr 'send-error|reset'
		[ "$(report_value sent)" -eq 61446 ]
	done
	assert_serves
}

@test "lingering close: a refused client that keeps sending gets its Error line, no reset" {
	start_daemon -o max-per-source=1 -o resolve=no
	hold a 'a\n'
	wait_until '[ "$(nchildren)" -eq 1 ]'
	run --separate-stderr client --timeout 10 --keep-sending 61440 'hello\n'
	assert_success
	assert_output 'Error: too many connections from your address'
	refute_stderr 'send-error|reset'
	release a
	no_children
	assert_serves
}

# -- hostile inputs ---------------------------------------------------------------

# flood N: N clients in parallel (all connect first, then all send); prints
# "answered=A refused=R other=O" and the first few odd results.
flood() {
	"$PYTHON" - "$PORT" "$1" <<'EOF'
import socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
refusal = b"Error: too many connections from your address\n"
res = [None] * n
go = threading.Barrier(n, timeout=20)
def one(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
    except OSError as e:
        go.abort()
        res[i] = "connect: %s" % e
        return
    try:
        try:
            go.wait()
        except threading.BrokenBarrierError:
            pass
        line = b"flood %d\n" % i
        s.sendall(line)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        res[i] = "answered" if got == b"You said:" + line else \
            "refused" if got == refusal else "got %r" % got
    except OSError as e:
        res[i] = "error: %s" % e
    finally:
        s.close()
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
a = res.count("answered"); r = res.count("refused")
print("answered=%d refused=%d other=%d" % (a, r, n - a - r))
for x in [x for x in res if x not in ("answered", "refused")][:5]:
    print("odd:", x)
EOF
}

@test "flood: 200 clients at once are all answered or cleanly refused" {
	skip_under_valgrind_load
	start_daemon -o resolve=no
	run flood 200
	assert_success
	[[ $output =~ answered=([0-9]+)\ refused=([0-9]+)\ other=0 ]] ||
	    fail "odd results: $output"
	answered=${BASH_REMATCH[1]} refused=${BASH_REMATCH[2]}
	[ "$((answered + refused))" -eq 200 ]
	[ "$answered" -ge 16 ]
	pid_alive "$DAEMON_PID"
	no_children 10
	assert_no_zombies
	daemon_stats
	[ "$(stats_value served)" -eq "$answered" ]
	[ "$(stats_value refused)" -eq "$refused" ]
	[ "$(stats_value active)" -eq 0 ]
	assert_serves
}

@test "flood: without a per-source limit 200 clients at once are all answered" {
	skip_under_valgrind_load
	start_daemon -o max-per-source=0 -o resolve=no
	run flood 200
	assert_success
	assert_output 'answered=200 refused=0 other=0'
	no_children 10
	assert_no_zombies
	daemon_stats
	[ "$(stats_value served)" -eq 200 ]
	assert_serves
}

@test "slowloris: dripping clients are cut at the deadline while others are served" {
	skip_under_valgrind_load
	start_daemon -o timeout=2 -o resolve=no
	client --repeat 10 --parallel 10 --timeout 10 --drip 0.2 --stop-on-eof \
	    --expect 'Error: timeout\n' 'abcdefghijklmnopqrstuvwxyz' \
	    >"$BATS_TEST_TMPDIR/drip.out" 2>&1 3>&- &
	drip=$!
	wait_until '[ "$(nchildren)" -ge 10 ]'
	assert_serves
	assert_serves --source 127.0.0.2
	# Served while the drippers still hold their children: before any of
	# them reached its deadline (an order, not a wall-clock bound).
	[ "$(log_count ' outcome=timeout ')" -eq 0 ]
	[ "$(nchildren)" -ge 10 ]
	wait_until "! pid_alive $drip" 10
	st=0
	wait "$drip" || st=$?
	[ "$st" -eq 0 ] || fail "drippers: $(cat "$BATS_TEST_TMPDIR/drip.out")"
	grep -q '^client: repeat ok=10 failed=0$' "$BATS_TEST_TMPDIR/drip.out"
	no_children
	daemon_stats
	[ "$(stats_value timeouts)" -eq 10 ]
	[ "$(stats_value served)" -eq 2 ]
}

@test "huge line: 1 MB without a newline gets 'Error: line too long' and is closed promptly" {
	skip_under_valgrind_load
	start_daemon -o resolve=no
	run --separate-stderr client --timeout 10 --size 1048576 --stop-on-eof
	# The linger is bounded (1 s, 256 KiB), so the rest of the megabyte may
	# legitimately end in a reset once the answer is in (client status 3):
	# a client still sending when the RST arrives sees it on send().
	[ "$status" -eq 0 ] || [ "$status" -eq 3 ] ||
	    fail "client status $status: $stderr"
	assert_output 'Error: line too long'
	float_test "$(report_value first-byte-at)" '<' 1.5
	# Closed promptly: by the linger bound, not the 10 s client timeout.
	float_test "$(report_value elapsed)" '<' 3
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=too-long in=[0-9]+ out=21 '
	in=$(grep -a 'outcome=too-long' "$DAEMON_LOG" | sed 's/.* in=\([0-9]*\) .*/\1/')
	[ "$in" -le 4098 ] || fail "the child read $in bytes of a too-long line (max-line 4096)"
	assert_serves
	daemon_stats
	[ "$(stats_value too-long)" -eq 1 ]
}

@test "binary garbage: answered byte for byte, logged escaped, daemon fine" {
	start_daemon -v -o resolve=no
	"$PYTHON" -c '
import random, sys
r = random.Random(3)
data = bytes(r.randrange(256) for _ in range(3000)).replace(b"\n", b"\xff")
sys.stdout.buffer.write(data[:2000] + b"\x00\r\x1b\n" + data[2000:])' >"$BATS_TEST_TMPDIR/garbage"
	run --separate-stderr client --timeout 5 --stdin --shutdown --out "$BATS_TEST_TMPDIR/got" <"$BATS_TEST_TMPDIR/garbage"
	assert_success
	{ printf 'You said:'; head -c 2004 "$BATS_TEST_TMPDIR/garbage"; } >"$BATS_TEST_TMPDIR/want"
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=ok in=[0-9]+ out=2013 '
	# Logged escaped and capped: only printable ASCII in the whole log.
	if LC_ALL=C grep -aq '[^[:print:]]' "$DAEMON_LOG"; then
		fail "raw client bytes in the log: $(LC_ALL=C grep -a '[^[:print:]]' "$DAEMON_LOG" | cat -v)"
	fi
	sent=$(grep -a ' sent "' "$DAEMON_LOG")
	[[ $sent == *'..."' ]]
	assert_serves
}

@test "resets mid-request: a client that resets after a partial line is logged as error or eof" {
	start_daemon -o resolve=no
	ports=()
	for _ in $(seq 10); do
		run --separate-stderr client --timeout 5 --rst 'partial line'
		assert_success
		ports+=("$(sed -n 's/^client: connected local=[^ ]* port=\([0-9]*\)$/\1/p' <<<"$stderr")")
	done
	for p in "${ports[@]}"; do
		wait_for_log "^end client=127\.0\.0\.1 port=$p pid=[0-9]+ outcome=(error|eof) "
	done
	pid_alive "$DAEMON_PID"
	no_children
	assert_no_zombies
	assert_serves
	no_children	# it counts once it has exited
	daemon_stats
	[ "$(stats_value served)" -eq 1 ]
	[ $(($(stats_value errors) + $(stats_value eof))) -eq 10 ]
}

@test "resets: a client that resets while the answer is in flight harms nothing" {
	start_daemon -o resolve=no
	run --separate-stderr client --repeat 30 --parallel 5 --timeout 5 --rst --ignore-errors --size 5000 'x\n'
	assert_success
	no_children
	assert_no_zombies
	assert_serves
}
