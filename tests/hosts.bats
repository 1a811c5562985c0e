#!/usr/bin/env bats
# shellcheck shell=bash
# Conditions passed to wait_until are single-quoted on purpose (evaluated
# later); each @test runs in its own subshell, so its assignments stay there.
# shellcheck disable=SC2016,SC2030,SC2031,SC2034
# Several hosts behind one balancer (issue 16): three srvexample hosts, a
# HAProxy balancer and a client, each in a network namespace of its own,
# joined by veth pairs:
#
#	client 10.77.0.2 -- 10.77.0.1 balancer 10.77.N.1 -- 10.77.N.2 host N
#
# HAProxy sends PROXY v2 to each host's port 3456 and asks each host's agent
# (agent-port 3457) for its weight, a share of the configured weight 100 (of
# weight 1, the default, any share below 100% rounds down to 0); its plain health check connects to the
# agent port too, so checks never show up as clients.  A steady load runs
# through the balancer while one host drains, one is killed and comes back.

load test_helper

HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
FRONT=10.77.0.1
LOAD_PARALLEL=4

# -- helpers local to this file ------------------------------------------------

# ns NAME: the namespace's full name (unique to this test run).
ns() {
	printf 'srvx%s%s\n' "$NS_TAG" "$1"
}

# in_ns NAME COMMAND...: run COMMAND in namespace NAME.
in_ns() {
	local n=$1
	shift
	ip netns exec "$(ns "$n")" "$@"
}

# link NS1 ADDR1 NS2 ADDR2: a veth pair between two namespaces, /24 each end.
link() {
	local a=v$RANDOM b=v$RANDOM
	ip link add "$a" netns "$(ns "$1")" type veth peer "$b" netns "$(ns "$3")"
	in_ns "$1" ip addr add "$2/24" dev "$a"
	in_ns "$3" ip addr add "$4/24" dev "$b"
	in_ns "$1" ip link set "$a" up
	in_ns "$3" ip link set "$b" up
}

# make_net: the five namespaces and their links.
make_net() {
	local n
	for n in cl lb h1 h2 h3; do
		ip netns add "$(ns "$n")"
		NETNS_MADE+=("$(ns "$n")")
		in_ns "$n" ip link set lo up
	done
	link cl 10.77.0.2 lb "$FRONT"
	for n in 1 2 3; do
		link lb "10.77.$n.1" "h$n" "10.77.$n.2"
	done
}

# start_host N: srvexample on host N (10.77.N.2:3456, agent on 3457),
# trusting the balancer's PROXY header.  Sets HOST_PID[N] and HOST_LOG[N].
start_host() {
	local n=$1
	DAEMON_PREFIX=(ip netns exec "$(ns "h$n")")
	LISTEN=10.77.$n.2 DAEMON_FIXED_PORT=3456 start_daemon -o resolve=no \
	    -o proxy-protocol=yes -o proxy-from="10.77.$n.1" -o max-per-source=0 \
	    -o agent-port=3457 -o shutdown-delay=3 -o grace=5
	HOST_PID[n]=$DAEMON_PID
	HOST_LOG[n]=$DAEMON_LOG
	track_pid "$DAEMON_PID"
	DAEMON_PID=
	DAEMON_PREFIX=()
}

# start_balancer: HAProxy in the balancer namespace on $FRONT:3456.
start_balancer() {
	local cfg=$BATS_TEST_TMPDIR/haproxy.cfg n
	[ -x "$HAPROXY" ] || skip "haproxy is not installed ($HAPROXY)"
	HSOCK=$BATS_TEST_TMPDIR/haproxy.sock
	cat >"$cfg" <<-EOF
	global
	    stats socket $HSOCK mode 600 level admin
	defaults
	    mode tcp
	    timeout connect 1s
	    timeout client 10s
	    timeout server 10s
	    retries 3
	    option redispatch 1
	    default-server weight 100 send-proxy-v2 check port 3457 inter 200ms fall 2 rise 2 agent-check agent-port 3457 agent-inter 200ms
	frontend front
	    bind $FRONT:3456
	    default_backend hosts
	backend hosts
	    balance roundrobin
	EOF
	for n in 1 2 3; do
		printf '    server h%s 10.77.%s.2:3456\n' "$n" "$n" >>"$cfg"
	done
	in_ns lb "$HAPROXY" -db -f "$cfg" </dev/null \
	    >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 3>&- &
	HAPROXY_PID=$!
	track_pid "$HAPROXY_PID"
	for n in 1 2 3; do
		wait_until "[ \"\$(server_status h$n)\" = UP ]" 10 ||
		    fail "HAProxy never saw h$n up: $(cat "$BATS_TEST_TMPDIR/haproxy.log")"
	done
}

# haproxy_cmd COMMAND: ask HAProxy's stats socket; print the answer.
haproxy_cmd() {
	"$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())' "$HSOCK" "$1"
}

# server_field SERVER FIELD: one column of `show stat` for a server of the
# backend (status, weight, stot, ...), by the name in the CSV header.
server_field() {
	haproxy_cmd 'show stat' 2>/dev/null | awk -F, -v sv="$1" -v f="$2" '
	NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
	$1 == "hosts" && $2 == sv { print $col[f] }'
}

# server_status SERVER: UP, DOWN, DRAIN, ... (first word only).
server_status() {
	server_field "$1" status | cut -d' ' -f1
}

# start_load: a steady load from the client namespace through the balancer
# until stop_load; progress in LOAD_PROGRESS (ok=N failed=N).
start_load() {
	LOAD_PROGRESS=$BATS_TEST_TMPDIR/load.progress
	LOAD_STOP=$BATS_TEST_TMPDIR/load.stop
	LOAD_OUT=$BATS_TEST_TMPDIR/load.out
	in_ns cl "$PYTHON" "$CLIENT" --host "$FRONT" --port 3456 --repeat 0 \
	    --parallel "$LOAD_PARALLEL" --timeout 10 --stop-file "$LOAD_STOP" \
	    --progress-file "$LOAD_PROGRESS" --ignore-errors \
	    --expect 'You said:hello\n' 'hello\n' >"$LOAD_OUT" 2>&1 3>&- &
	LOAD_PID=$!
	wait_until '[ "$(load_count ok)" -ge 20 ]' 15 || fail "no load: $(cat "$LOAD_OUT")"
}

# load_count ok|failed: the load's count so far.
load_count() {
	sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$LOAD_PROGRESS" 2>/dev/null || echo 0
}

# more_load N: wait until N more exchanges of the load succeeded.
more_load() {
	local want=$(($(load_count ok) + $1))
	wait_until "[ \"\$(load_count ok)\" -ge $want ]" 20 ||
	    fail "the load stalled at $(load_count ok): $(cat "$LOAD_OUT")"
}

# stop_load: end the load, wait for it; sets LOAD_OK and LOAD_FAILED.
stop_load() {
	: >"$LOAD_STOP"
	wait "$LOAD_PID" || true
	LOAD_OK=$(sed -n 's/^client: repeat ok=\([0-9]*\) failed=.*/\1/p' "$LOAD_OUT")
	LOAD_FAILED=$(sed -n 's/^client: repeat ok=[0-9]* failed=\([0-9]*\)$/\1/p' "$LOAD_OUT")
	[ -n "$LOAD_OK" ] || fail "the load printed no total: $(cat "$LOAD_OUT")"
}

# served_by N: clients host N answered so far (its end lines, outcome ok).
served_by() {
	grep -ac ' outcome=ok ' "${HOST_LOG[$1]}" 2>/dev/null || true
}

setup() {
	common_setup
	require_root
	command -v ip >/dev/null || skip "ip (iproute2) is not installed"
	[ -x "$HAPROXY" ] || skip "haproxy is not installed ($HAPROXY)"
	NS_TAG=$$x$BATS_TEST_NUMBER
	NETNS_MADE=()
	declare -ga HOST_PID=() HOST_LOG=()
	make_net
	for n in 1 2 3; do
		start_host "$n"
	done
	start_balancer
}

teardown() {
	local n rc=0
	[ -z "${LOAD_STOP:-}" ] || : >"$LOAD_STOP"
	# All hosts drain at once, not one shutdown-delay after another.
	for n in "${HOST_PID[@]}"; do
		kill -TERM "$n" 2>/dev/null || true
	done
	common_teardown || rc=$?
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ] && [ -n "${HSOCK:-}" ]; then
		{
			echo "--- haproxy show stat:"
			haproxy_cmd 'show stat' 2>&1 || true
			echo "--- haproxy.log:"
			cat "$BATS_TEST_TMPDIR/haproxy.log" 2>/dev/null
			echo "--- load.out:"
			cat "${LOAD_OUT:-/dev/null}" 2>/dev/null
		} >&2
	fi
	for n in "${NETNS_MADE[@]}"; do
		ip netns del "$n" 2>/dev/null || true
	done
	return "$rc"
}

# -- the tests -----------------------------------------------------------------

@test "hosts: the balancer spreads clients over three hosts, each logging the real client" {
	start_load
	more_load 60
	stop_load
	[ "$LOAD_FAILED" -eq 0 ]
	for n in 1 2 3; do
		[ "$(served_by "$n")" -ge 1 ] || fail "host $n served no client"
		grep -Eaq '^Connection from 10\.77\.0\.2 \[10\.77\.0\.2\] [0-9]+$' "${HOST_LOG[$n]}" ||
		    fail "host $n did not log the real client (PROXY v2)"
		# The balancer's checks reach the agent, never the service.
		[ "$(grep -ac '10\.77\.'"$n"'\.1' "${HOST_LOG[$n]}")" -eq 0 ] ||
		    fail "host $n logged the balancer as a client"
	done
}

@test "hosts: draining one host with SIGTERM and shutdown-delay fails no client" {
	start_load
	kill -TERM "${HOST_PID[2]}"
	# During the delay the agent says drain and HAProxy stops sending.
	wait_until '[ "$(server_status h2)" = DRAIN ]' 5
	grep -aq 'draining' "${HOST_LOG[2]}" || fail "host 2 did not log the drain"
	before=$(served_by 2)
	more_load 40
	# Then the host stops as usual, and the others carry the load.
	wait_until "! pid_alive ${HOST_PID[2]}" 15
	wait "${HOST_PID[2]}" || fail "host 2 exited with status $?"
	wait_until '[ "$(server_status h2)" = DOWN ]' 5
	more_load 40
	stop_load
	[ "$LOAD_FAILED" -eq 0 ] || fail "$LOAD_FAILED clients failed while host 2 drained"
	[ "$(served_by 2)" -le $((before + LOAD_PARALLEL)) ] ||
	    fail "host 2 took new clients while draining ($before before, $(served_by 2) after)"
}

@test "hosts: a host killed with SIGKILL is marked down, only its clients in flight fail; back, it takes load again" {
	start_load
	more_load 40
	# At most LOAD_PARALLEL clients are in flight anywhere at once; those
	# on host 1 when it dies may fail (behind a balancer its children wait
	# for the parent's verdict), and no client after it is marked down.
	kill -KILL "${HOST_PID[1]}"
	wait_until '[ "$(server_status h1)" = DOWN ]' 5
	failed=$(load_count failed)
	more_load 60
	[ "$(load_count failed)" -eq "$failed" ] ||
	    fail "clients failed after host 1 was marked down: $(load_count failed), $failed before"
	[ "$failed" -le "$LOAD_PARALLEL" ] ||
	    fail "$failed clients failed, more than could be in flight ($LOAD_PARALLEL)"
	echo "# killed host: $failed clients failed" >&3
	# Back: the balancer sees it up and sends it clients again.
	start_host 1
	wait_until '[ "$(server_status h1)" = UP ]' 10
	wait_until '[ "$(served_by 1)" -ge 5 ]' 20
	stop_load
	[ "$LOAD_FAILED" -eq "$failed" ]
}
