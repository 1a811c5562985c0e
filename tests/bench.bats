#!/usr/bin/env bats
# shellcheck shell=bash
# status, output and lines are set by bats' run.
# shellcheck disable=SC2154
# bench.bats: the benchmark's instruments (issue 6) still measure what they
# claim.  `make bench` itself is too slow for check; here each server of
# bench/ (the reference, the iterative one, every step of the ladder)
# answers a short load without an error, and loadgen, which judges them
# all, is shown to count refused connections and wrong answers.

load test_helper

setup() {
	common_setup
	BENCH=${BENCH:-${top_builddir:-$BATS_TEST_DIRNAME/..}/bench}
	[ -x "$BENCH/loadgen" ] || skip "bench programs not built in $BENCH"
}

teardown() {
	common_teardown
}

# start_bench NAME ARGS...: run $BENCH/NAME on a free port with ARGS after
# the port, wait for its "ready:" line; sets B_PORT and B_WHAT (the server
# is tracked).
start_bench() {
	local name=$1 log=$BATS_TEST_TMPDIR/$1.log pid
	shift
	B_WHAT="$name $*"
	B_PORT=$(free_port)
	"$BENCH/$name" "$B_PORT" "$@" 2>"$log" &
	pid=$!
	track_pid "$pid"
	wait_until "grep -q '^ready: ' '$log'" 5 ||
	    fail "$name did not start: $(cat "$log")"
}

# assert_load N KEY=VALUE...: loadgen's line for N connections at
# concurrency 4 against B_PORT has each KEY=VALUE.
assert_load() {
	local n=$1 kv
	shift
	run "$BENCH/loadgen" -c 4 -n "$n" 127.0.0.1 "$B_PORT"
	for kv in "$@"; do
		[[ " ${output//$'\n'/ } " == *" $kv "* ]] ||
		    fail "${B_WHAT:-nobody}: no $kv in: $output"
	done
}

@test "bench: the reference and the iterative server answer every client" {
	start_bench refserver
	assert_load 200 conns=200 errors=0 wrong=0
	start_bench iterserver
	assert_load 200 conns=200 errors=0 wrong=0
}

@test "bench: every step of the ladder answers every client" {
	local step
	for step in 0 1 2 3 4 5 6; do
		start_bench ladder "$step"
		assert_load 100 conns=100 errors=0 wrong=0
	done
}

@test "bench: the ladder refuses a step it does not have" {
	run "$BENCH/ladder" 0 7
	[ "$status" -ne 0 ]
	[[ $output == *'step "7" is too large'* ]] || fail "$output"
}

@test "bench: loadgen counts refused connections and wrong answers" {
	# Nobody listens: every connection is an error.
	B_WHAT=nobody
	B_PORT=$(free_port)
	assert_load 20 conns=0 errors=20 wrong=0
	# A server that answers something else: every answer is wrong.
	B_WHAT="a wrong server"
	B_PORT=$(free_port)
	"$PYTHON" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
print("ready: wrong", file=sys.stderr, flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"You said:something else\r\n")
    c.close()' "$B_PORT" 2>"$BATS_TEST_TMPDIR/wrong.log" &
	track_pid "$!"
	wait_until "grep -q '^ready: ' '$BATS_TEST_TMPDIR/wrong.log'" 5 ||
	    fail "the wrong server did not start"
	assert_load 20 conns=0 errors=0 wrong=20
}

# assert_row FILE PATTERN: FILE has a line matching the extended regex.
assert_row() {
	grep -Eq -- "$2" "$1" || fail "no line like /$2/ in $1: $(cat "$1")"
}

@test "bench: run.sh -q runs every part and writes the held-load and cost tables" {
	[ -z "${SRVEXAMPLE_VALGRIND:-}" ] || skip "valgrind: the benchmark measures the real binary"
	# As a normal user run.sh was seen waiting forever for its reference
	# server (in CI's fresh root); until that is understood, root only.
	require_root
	local out=$BATS_TEST_TMPDIR/out num='[0-9]+([.][0-9]+)?'
	run "${top_srcdir:-$BATS_TEST_DIRNAME/..}/bench/run.sh" -q -b "$BENCH" \
	    -o "$out" "$SRVEXAMPLE"
	[ "$status" -eq 0 ] || fail "run.sh -q failed: $output"
	# one row per held level: both servers measured, and at 100 held
	# every held child answered
	assert_row "$out/RESULTS.md" '^\| idle clients held \| srvexample, new clients/s \| reference, new clients/s \| ratio \|'
	assert_row "$out/RESULTS.md" "^\\| 0 \\| $num \\| $num \\| $num \\| $num \\| $num \\|"
	assert_row "$out/RESULTS.md" "^\\| 100 \\| $num \\| $num \\| $num \\| $num \\| $num \\| $num / $num / -?$num \\| $num / $num / -?$num \\| 100 \\| 100 \\|$"
	assert_row "$out/RESULTS.md" '^- 100 held clients all answered by srvexample: 100 children, 100 answered, met$'
	run awk '!/^#/ { print NF }' "$out/held.dat"
	assert_output $'16\n16'
	run awk '!/^#/ { print $2 }' "$out/held-runs.dat"
	assert_output $'heldref\nheldsrv\nheldref\nheldsrv'
	if command -v perf >/dev/null &&
	    perf stat -e page-faults -o /dev/null true 2>/dev/null; then
		assert_row "$out/RESULTS.md" "^\\| reference \\(fork\\) \\| $num \\| $num \\| 1.00 \\|$"
		assert_row "$out/RESULTS.md" "^\\| srvexample \\| $num \\| $num \\| $num \\|$"
		assert_row "$out/RESULTS.md" "^Target \\(issue 13\\): srvexample's page faults per connection"
	fi
	if command -v gnuplot >/dev/null; then
		[ -s "$out/held.png" ] || fail "no held.png"
	fi
}
