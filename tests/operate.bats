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
