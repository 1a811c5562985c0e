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
	    'shutdown-delay 1' 'metrics-interval 60' >"$BATS_TEST_TMPDIR/srvexample.conf"
	signal_daemon HUP
	wait_for_log '^configuration reloaded'
	[ "$(log_count '^agent-port changed: takes effect after a restart')" -eq 1 ]
	[ "$(log_count '^metrics-file changed: takes effect after a restart')" -eq 1 ]
	[ "$(log_count '^(shutdown-delay|metrics-interval) changed')" -eq 0 ]
	[ ! -e "$BATS_TEST_TMPDIR/m.prom" ]
	assert_serves
}

@test "keywords: resolve yes needs a restart when started with resolve no (no resolver runs)" {
	printf '%s\n' 'resolve no' >"$BATS_TEST_TMPDIR/srvexample.conf"
	start_daemon
	[ -z "$(children_of "$DAEMON_PID")" ] || fail "a resolver runs with resolve no"
	printf '%s\n' 'resolve yes' >"$BATS_TEST_TMPDIR/srvexample.conf"
	signal_daemon HUP
	wait_for_log '^configuration reloaded'
	[ "$(log_count '^resolve changed: takes effect after a restart$')" -eq 1 ]
	# And the client is logged by address, as the log line says.
	assert_serves
	wait_for_log '^Connection from 127\.0\.0\.1 \[127\.0\.0\.1\] '
}

# metrics_dir: sets MDIR, a directory the daemon's user can write, and MFILE.
metrics_dir() {
	make_world_tmpdir
	MDIR=$WORLD_TMPDIR/metrics
	mkdir "$MDIR"
	[ "$(id -u)" != 0 ] || chown nobody "$MDIR"
	MFILE=$MDIR/srvexample.prom
}

# metric SERIES: the value of SERIES (name and labels, as written) in MFILE.
metric() {
	awk -v k="$1" '$1 == k { print $2 }' "$MFILE"
}

# http_get PORT PATH: the body of http://127.0.0.1:PORT/PATH.
http_get() {
	"$PYTHON" -c '
import sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]),
                            timeout=5) as r:
    sys.stdout.write(r.read().decode())' "$1" "$2"
}

@test "metrics: every series, with HELP and TYPE, from the first write on, zeros included" {
	metrics_dir
	start_daemon -o resolve=no -o max-children=7 -o "metrics-file=$MFILE"
	wait_until "[ -s '$MFILE' ]" 5
	local s n=0 bad=
	for s in 'srvexample_clients_total{outcome="ok"}' \
	    'srvexample_clients_total{outcome="eof"}' \
	    'srvexample_clients_total{outcome="timeout"}' \
	    'srvexample_clients_total{outcome="too-long"}' \
	    'srvexample_clients_total{outcome="error"}' \
	    'srvexample_clients_total{outcome="denied"}' \
	    'srvexample_refused_total{reason="max-per-source"}' \
	    'srvexample_refused_total{reason="rate"}' \
	    'srvexample_refused_total{reason="crash-penalty"}' \
	    'srvexample_refused_total{reason="timeout-penalty"}' \
	    'srvexample_refused_total{reason="proxy"}' \
	    'srvexample_refused_total{reason="busy"}' \
	    srvexample_crashes_total srvexample_children srvexample_queued; do
		n=$((n + 1))
		[ "$(metric "$s")" = 0 ] || bad+="$s=$(metric "$s") "
	done
	[ -z "$bad" ] || fail "not 0 in the first write: $bad"
	[ "$(metric srvexample_max_children)" = 7 ]
	local t
	t=$(metric srvexample_start_time_seconds)
	(( t > $(date +%s) - 60 && t <= $(date +%s) ))
	# 15 + max_children + start_time series; 7 metrics, each with HELP/TYPE.
	[ "$(grep -c '^srvexample_' "$MFILE")" -eq $((n + 2)) ]
	for s in clients_total:counter refused_total:counter crashes_total:counter \
	    children:gauge max_children:gauge queued:gauge start_time_seconds:gauge; do
		grep -q "^# HELP srvexample_${s%:*} [^ ]" "$MFILE" || fail "no HELP for ${s%:*}"
		grep -qx "# TYPE srvexample_${s%:*} ${s#*:}" "$MFILE" || fail "no TYPE ${s#*:} for ${s%:*}"
	done
	# Nothing but the file is left in the directory (the temporary one is
	# renamed into place).
	[ "$(ls -A "$MDIR")" = srvexample.prom ]
}

@test "metrics: SIGUSR1 writes the file at once, and it is rewritten every metrics-interval" {
	metrics_dir
	start_daemon -o resolve=no -o max-per-source=0 -o "metrics-file=$MFILE" \
	    -o metrics-interval=86400
	wait_until "[ -s '$MFILE' ]" 5
	client --repeat 3 --expect 'You said:x\n' 'x\n'
	client --shutdown >/dev/null 2>&1 || true
	wait_until "[ \$(log_count '^end client=') -eq 4 ]" 5
	wait_until 'daemon_stats | grep -q " active=0 "' 5
	[ "$(metric 'srvexample_clients_total{outcome="ok"}')" = 3 ]
	[ "$(metric 'srvexample_clients_total{outcome="eof"}')" = 1 ]
	stop_daemon
	# With metrics-interval 1 the file follows without any signal.
	rm -f "$MFILE"
	start_daemon -o resolve=no -o "metrics-file=$MFILE" -o metrics-interval=1
	wait_until "[ -s '$MFILE' ]" 5
	client --expect 'You said:y\n' 'y\n'
	wait_until "[ \"\$(metric 'srvexample_clients_total{outcome=\"ok\"}')\" = 1 ]" 10
	[ "$(log_count '^stats: ')" -eq 0 ]
}

@test "metrics: a directory the daemon cannot open stops the start, naming it" {
	local -a u
	mapfile -t u < <(user_args)
	run "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 -p "$(free_port)" "${u[@]}" \
	    -o "metrics-file=$BATS_TEST_TMPDIR/none/x.prom"
	assert_failure
	assert_output --partial "metrics-file $BATS_TEST_TMPDIR/none/x.prom: directory $BATS_TEST_TMPDIR/none"
}

@test "metrics: node_exporter's textfile collector serves the counters, without a scrape error" {
	need prometheus-node-exporter
	metrics_dir
	local nport
	nport=$(free_port)
	prometheus-node-exporter --collector.disable-defaults --collector.textfile \
	    "--collector.textfile.directory=$MDIR" \
	    "--web.listen-address=127.0.0.1:$nport" \
	    >"$BATS_TEST_TMPDIR/node_exporter.log" 2>&1 3>&- &
	track_pid $!
	start_daemon -o resolve=no -o max-per-source=0 -o "metrics-file=$MFILE" \
	    -o metrics-interval=86400
	client --repeat 5 --expect 'You said:x\n' 'x\n'
	wait_until "[ \$(log_count '^end client=') -eq 5 ]" 5
	wait_until 'daemon_stats | grep -q " served=5 active=0 "' 5
	wait_until "http_get $nport /metrics >'$BATS_TEST_TMPDIR/scrape' 2>/dev/null" 10
	wait_until "http_get $nport /metrics >'$BATS_TEST_TMPDIR/scrape' &&
	    grep -qx 'srvexample_clients_total{outcome=\"ok\"} 5' '$BATS_TEST_TMPDIR/scrape'" 10 ||
	    fail "node_exporter: $(grep srvexample_clients "$BATS_TEST_TMPDIR/scrape")"
	grep -qx 'node_textfile_scrape_error 0' "$BATS_TEST_TMPDIR/scrape" ||
	    fail "$(grep -i textfile "$BATS_TEST_TMPDIR/scrape" "$BATS_TEST_TMPDIR/node_exporter.log")"
	grep -qx 'srvexample_clients_total{outcome="eof"} 0' "$BATS_TEST_TMPDIR/scrape"
	grep -qx 'srvexample_max_children 256' "$BATS_TEST_TMPDIR/scrape"
	grep -qx '# TYPE srvexample_refused_total counter' "$BATS_TEST_TMPDIR/scrape"
}

@test "shutdown-delay: after SIGTERM new clients are still served, STATUS=draining; a second SIGTERM stops at once" {
	notify_listen "$BATS_TEST_TMPDIR/notify.sock"
	DAEMON_PREFIX=(env "NOTIFY_SOCKET=$BATS_TEST_TMPDIR/notify.sock")
	start_daemon -o resolve=no -o max-per-source=0 -o shutdown-delay=3600
	signal_daemon TERM
	wait_for_log '^received SIGTERM, draining for 3600 s before shutting down$'
	wait_until '[ "$(last_status)" = draining ]' 5
	# Accepting goes on: new clients, one after the other, each served.
	client --repeat 5 --expect 'You said:x\n' 'x\n'
	wait_until "[ \$(log_count 'outcome=ok') -eq 5 ]" 5
	pid_alive "$DAEMON_PID"
	# The counters on SIGUSR1 do not hide the draining status.
	daemon_stats >/dev/null
	[ "$(log_count ', shutting down$')" -eq 0 ]
	[ "$(last_status)" = draining ]
	# The second SIGTERM ends the delay (3600 s) at once.
	signal_daemon TERM
	wait_daemon_exit 10
	[ "$DAEMON_STATUS" -eq 0 ]
	[ "$(log_count '^received SIGTERM again, shutting down$')" -eq 1 ]
	[ "$(log_count '^exiting$')" -eq 1 ]
}

@test "shutdown-delay: at its end the listeners close and the stop goes on with grace" {
	start_daemon -o resolve=no -o shutdown-delay=1 -o grace=3600
	hold a 'a\n'
	signal_daemon TERM
	wait_for_log '^received SIGTERM, draining for 1 s'
	wait_for_log '^shutdown-delay over, shutting down$' 10
	# Listeners closed: a new client is refused by the kernel.
	local st=0
	client --timeout 2 'x\n' >/dev/null 2>&1 || st=$?
	[ "$st" -eq 5 ] || fail "a new client after the delay: status $st"
	# The held client, accepted before, still finishes within grace.
	release a
	wait_daemon_exit 10
	[ "$DAEMON_STATUS" -eq 0 ]
	grep -q 'You said:a' "${H_OUT[a]}"
}

@test "shutdown-delay 0: SIGTERM stops at once, as before" {
	start_daemon -o resolve=no
	signal_daemon TERM
	wait_daemon_exit 10
	[ "$(log_count 'draining')" -eq 0 ]
	[ "$(log_count '^received SIGTERM, shutting down$')" -eq 1 ]
}

# agent_line: connect to the agent port and print what it answers.
agent_line() {
	"$PYTHON" -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
data = b""
while True:
    b = s.recv(100)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())' "$APORT"
}

@test "agent: up N% follows the free share of max-children, drain during shutdown-delay; no child, no log record" {
	APORT=$(free_port)
	# timeout 300: held clients outlast a slow machine.
	start_daemon -o resolve=no -o max-per-source=0 -o max-children=4 \
	    -o "agent-port=$APORT" -o shutdown-delay=3600 -o timeout=300
	wait_for_log "^agent-port $APORT: answering HAProxy's agent check$"
	[ "$(agent_line)" = 'up 100%' ]
	hold a 'a\n'
	wait_until '[ "$(nchildren)" -eq 1 ]' 5
	[ "$(agent_line)" = 'up 75%' ]
	hold b 'b\n'
	hold c 'c\n'
	hold d 'd\n'
	wait_until '[ "$(nchildren)" -eq 4 ]' 5
	# Full: at least 1%, so that the server keeps a little weight.
	[ "$(agent_line)" = 'up 1%' ]
	[ "$(nchildren)" -eq 4 ]
	release a
	release b
	wait_until '[ "$(agent_line)" = "up 50%" ]' 5
	release c
	release d
	# 30 agent checks: never a child, never a client line in the log.
	local i
	for i in $(seq 30); do
		[ "$(agent_line)" = 'up 100%' ] || fail "check $i: $(agent_line)"
	done
	[ "$(log_count '^Connection from')" -eq 4 ]
	[ "$(log_count '^end client=')" -eq 4 ]
	wait_until 'daemon_stats | grep -q " served=4 active=0 "' 5
	signal_daemon TERM
	wait_for_log '^received SIGTERM, draining'
	[ "$(agent_line)" = drain ]
	assert_serves
	signal_daemon TERM
	wait_daemon_exit 10
}

@test "agent: a flood of agent connections is bounded and the daemon goes on serving" {
	APORT=$(free_port)
	start_daemon -o resolve=no -o "agent-port=$APORT"
	local base fds
	base=$(find "/proc/$DAEMON_PID/fd" -mindepth 1 | wc -l)
	# 300 connections that never read nor close, at once: the parent holds
	# at most its lingering slots and closes the rest without an answer.
	"$PYTHON" -c '
import socket, sys, time
socks = []
for i in range(300):
    try:
        socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        pass
open(sys.argv[2], "w").write("%d\n" % len(socks))
time.sleep(60)' "$APORT" "$BATS_TEST_TMPDIR/flood" 3>&- &
	local flood=$!
	track_pid "$flood"
	wait_until "[ -s '$BATS_TEST_TMPDIR/flood' ]" 20
	fds=$(find "/proc/$DAEMON_PID/fd" -mindepth 1 | wc -l)
	echo "descriptors: $base before, $fds with $(cat "$BATS_TEST_TMPDIR/flood") agent connections"
	(( fds <= base + 128 )) || fail "the parent holds $fds descriptors"
	assert_serves
	wait_until '[ "$(agent_line)" = "up 100%" ]' 5
	[ "$(log_count '^Connection from')" -eq 1 ]
	kill "$flood"
}

# haproxy_agent: HAProxy in front of the daemon with the agent check on
# APORT every 200 ms, and an admin stats socket; sets HPORT, HSOCK.
haproxy_agent() {
	local cfg=$BATS_TEST_TMPDIR/haproxy.cfg haproxy=${HAPROXY:-/usr/sbin/haproxy}
	[ -x "$haproxy" ] || skip "haproxy is not installed ($haproxy)"
	need socat
	HPORT=$(free_port)
	HSOCK=$BATS_TEST_TMPDIR/haproxy.sock
	cat >"$cfg" <<-EOF
	global
	    maxconn 64
	    stats socket $HSOCK mode 600 level admin
	defaults
	    mode tcp
	    timeout connect 5s
	    timeout client 10s
	    timeout server 10s
	frontend fe
	    bind 127.0.0.1:$HPORT
	    default_backend be
	backend be
	    server s1 127.0.0.1:$PORT weight 100 agent-check agent-port $APORT agent-inter 200ms
	EOF
	"$haproxy" -db -f "$cfg" </dev/null >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 3>&- &
	track_pid $!
	wait_until "[ -S '$HSOCK' ]" 10 || fail "haproxy did not start: $(cat "$BATS_TEST_TMPDIR/haproxy.log")"
}

# server_stat FIELD: FIELD of server s1 in HAProxy's `show stat` (CSV).
server_stat() {
	echo 'show stat' | socat - "UNIX-CONNECT:$HSOCK" |
	    awk -F, -v f="$1" 'NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) c[$i] = i; next }
		$1 == "be" && $2 == "s1" { print $c[f] }'
}

@test "agent: HAProxy's agent-check sets the weight from the load and drains the server during shutdown-delay" {
	APORT=$(free_port)
	start_daemon -o resolve=no -o max-per-source=0 -o max-children=4 \
	    -o "agent-port=$APORT" -o shutdown-delay=3600 -o timeout=300
	haproxy_agent
	wait_until '[ "$(server_stat weight)" = 100 ]' 10 ||
	    fail "weight $(server_stat weight), status $(server_stat status)"
	# Two of four children busy (clients straight to the daemon): 50%.
	hold a 'a\n'
	hold b 'b\n'
	wait_until '[ "$(server_stat weight)" = 50 ]' 10 ||
	    fail "weight $(server_stat weight) with 2 of 4 busy"
	hold c 'c\n'
	wait_until '[ "$(server_stat weight)" = 25 ]' 10 ||
	    fail "weight $(server_stat weight) with 3 of 4 busy"
	release a
	release b
	release c
	wait_until '[ "$(server_stat weight)" = 100 ]' 10
	# Through HAProxy a client is served.
	client --port "$HPORT" --timeout 5 --expect 'You said:via haproxy\n' 'via haproxy\n'
	# SIGTERM: the agent says drain, HAProxy shows the server DRAIN, and
	# the daemon still serves what comes (here, straight to it).
	signal_daemon TERM
	wait_until '[[ "$(server_stat status)" == "DRAIN (agent)" ]]' 10 ||
	    fail "status $(server_stat status), weight $(server_stat weight)"
	assert_serves
	# Agent checks never show up as clients.
	[ "$(log_count '^Connection from')" -eq 5 ]
	signal_daemon TERM
	wait_daemon_exit 10
}

@test "agent: with socket activation the socket named agent in LISTEN_FDNAMES is the agent's" {
	need systemd-socket-activate
	local log=$BATS_TEST_TMPDIR/activated.log
	local -a u
	mapfile -t u < <(user_args)
	PORT=$(free_port)
	APORT=$(free_port)
	systemd-socket-activate -l "127.0.0.1:$PORT" -l "127.0.0.1:$APORT" \
	    --fdname=main:agent "$SRVEXAMPLE" -d -f /dev/null "${u[@]}" \
	    -o resolve=no -o max-children=4 </dev/null >"$log" 2>&1 3>&- &
	track_pid $!
	wait_until "[ \"\$(agent_line 2>/dev/null)\" = 'up 100%' ]" 10 ||
	    fail "no agent answer: $(cat "$log")"
	client --expect 'You said:x\n' 'x\n'
	# Agent connections are not clients; the listener is not the agent.
	[ "$(grep -c '^Connection from' "$log")" -eq 1 ]
	grep -q "^listening on 127.0.0.1 port $APORT (socket activation)$" "$log"
}
