#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until are single-quoted on purpose (evaluated later); each @test runs
# in its own subshell, so its assignments are meant to stay there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# Abuse defences (issue 15): rate-per-source, exempt, timeout-penalty and
# penalty-max (penalties that add up and expire), defer-accept (its own
# sockets, systemd's, on reload, behind HAProxy).  Sources are distinct
# addresses of 127.0.0.0/8, bound by the client.  Refusal log lines are
# rate-limited (one per 5 s), so beyond the first refusal of a test the
# counters of SIGUSR1 tell the reasons apart.

load test_helper

HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
RATE_LINE='Error: too many new connections from your address'
PENALTY_LINE='Error: try again later'

# -- helpers local to this file ------------------------------------------------

# conf_file LINE...: the configuration file start_daemon reads.
conf_file() {
	CONF=$BATS_TEST_TMPDIR/srvexample.conf
	printf '%s\n' "$@" >"$CONF"
}

# says SOURCE LINE: a client from SOURCE sending LINE gets exactly
# "You said:LINE" back.
says() {
	run --separate-stderr client --source "$1" --timeout 5 "$2\\n"
	assert_success
	assert_output "You said:$2"
}

# refused SOURCE ERROR-LINE: a client from SOURCE gets exactly ERROR-LINE.
refused() {
	run --separate-stderr client --source "$1" --timeout 5 'hello\n'
	assert_success
	assert_output "$2"
}

# served_now SOURCE: a client from SOURCE is answered (for wait_until).
served_now() {
	[ "$(client --source "$1" --timeout 5 'again\n' 2>/dev/null)" = 'You said:again' ]
}

# end_re SOURCE OUTCOME: the regex of the start of an end line, up to the
# outcome (a reason or " in=" follows).
end_re() {
	printf '^end client=%s port=[0-9]+ pid=[0-9]+ outcome=%s' \
	    "${1//./\\.}" "$2"
}

# child_of NAME: the daemon's child serving held client NAME.
child_of() {
	child_for_port "${H_PORT[$1]}" 20
}

# reaped PID: the daemon has reaped its child PID, zombie included (its
# counts and penalties are up to date once the child is gone).
reaped() {
	wait_until "[ ! -e /proc/$1 ]" 10
}

# -- rate-per-source -------------------------------------------------------------

@test "rate-per-source: N new connections from a source are served, the next is refused (reason=rate)" {
	start_daemon -o rate-per-source=3 -o resolve=no
	says 127.0.0.20 one
	says 127.0.0.20 two
	says 127.0.0.20 three
	refused 127.0.0.20 "$RATE_LINE"
	wait_for_log "^end client=127\.0\.0\.20 port=[0-9]+ pid=$DAEMON_PID outcome=refused reason=rate in=0 out=0 "
	# Another source has a bucket of its own.
	says 127.0.0.21 other
	no_children
	daemon_stats
	[ "$(stats_value rate)" -eq 1 ]
	[ "$(stats_value max-per-source)" -eq 0 ]
	[ "$(stats_value refused)" -eq 1 ]
	[ "$(stats_value served)" -eq 4 ]
	[ "$(log_count '^Connection from 127\.0\.0\.20 ')" -eq 3 ]
}

@test "rate-per-source: a flood of refusals is counted one by one and logged rate-limited" {
	start_daemon -o rate-per-source=1 -o resolve=no
	says 127.0.0.20 first
	run client --source 127.0.0.20 --repeat 30 --timeout 5 \
	    --expect "$RATE_LINE\\n" 'flood\n'
	assert_success
	no_children
	daemon_stats
	[ "$(stats_value rate)" -eq 30 ]
	[ "$(stats_value served)" -eq 1 ]
	n=$(log_count 'outcome=refused reason=rate ')
	[ "$n" -ge 1 ] && [ "$n" -le 10 ] || fail "$n refusal lines for 30 refusals"
	[ "$(log_count '^Connection from ')" -eq 1 ]
}

@test "rate-per-source: behind a balancer it counts the real client named in the PROXY header" {
	start_daemon -o resolve=no -o proxy-protocol=yes -o proxy-from=127.0.0.1 \
	    -o rate-per-source=1 -o exempt=192.0.2.99
	v1() { printf 'PROXY TCP4 %s 127.0.0.1 4000 %s\\r\\n' "$1" "$PORT"; }
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.7)one\\n"
	assert_output 'You said:one'
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.7)two\\n"
	assert_output "$RATE_LINE"
	wait_for_log "$(end_re 192.0.2.7 refused) reason=rate "
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.8)three\\n"
	assert_output 'You said:three'
	# An exempt real client has no bucket at all.
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.99)x1\\n"
	assert_output 'You said:x1'
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.99)x2\\n"
	assert_output 'You said:x2'
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.99)x3\\n"
	assert_output 'You said:x3'
	no_children
	daemon_stats
	[ "$(stats_value rate)" -eq 1 ]
	[ "$(stats_value refused)" -eq 1 ]
	[ "$(stats_value served)" -eq 5 ]
}

# -- exempt ------------------------------------------------------------------------

@test "exempt: max-per-source, rate-per-source and penalties never apply; allow and deny still do" {
	ulimit -c 0
	conf_file 'exempt 127.0.0.16/29' 'deny 127.0.0.17'
	start_daemon -o max-per-source=1 -o rate-per-source=1 -o crash-penalty=60 \
	    -o timeout-penalty=60 -o resolve=no
	# Two at once from one exempt source, beyond max-per-source 1.
	hold a --source 127.0.0.18 'a\n'
	hold b --source 127.0.0.18 'b\n'
	child_of a >/dev/null
	child_of b >/dev/null
	release a
	release b
	assert_bytes "${H_OUT[a]}" 'You said:a\n'
	assert_bytes "${H_OUT[b]}" 'You said:b\n'
	# A crash: logged, no penalty.
	hold c --source 127.0.0.18
	pid=$(child_of c)
	kill -SEGV "$pid"
	wait_for_log "^child $pid \(client 127\.0\.0\.18\) killed by signal SIGSEGV$"
	reaped "$pid"
	# A child stopped by its watchdog (a timeout): no penalty either.
	hold d --source 127.0.0.18
	pid=$(child_of d)
	kill -ALRM "$pid"
	wait_for_log "^child $pid \(client 127\.0\.0\.18\) stopped by its watchdog$"
	reaped "$pid"
	# Many more new connections than rate-per-source 1.
	says 127.0.0.18 three
	says 127.0.0.19 four
	says 127.0.0.18 five
	# Exempt, but denied: no answer, logged as denied.
	run --separate-stderr client --source 127.0.0.17 --timeout 5 'x\n'
	assert_success
	assert_output ''
	wait_for_log "$(end_re 127.0.0.17 denied) "
	# Outside the exempt network every limit applies.
	says 127.0.0.40 limited
	refused 127.0.0.40 "$RATE_LINE"
	no_children
	daemon_stats
	[ "$(stats_value refused)" -eq 1 ]
	[ "$(stats_value rate)" -eq 1 ]
	[ "$(stats_value denied)" -eq 1 ]
	[ "$(stats_value crashed)" -eq 1 ]
	[ "$(stats_value timeouts)" -eq 1 ]
	[ "$(stats_value served)" -eq 6 ]
}

@test "exempt: -o exempt= replaces the file's list" {
	conf_file 'exempt 127.0.0.26'
	start_daemon -o exempt=127.0.0.27 -o rate-per-source=1 -o resolve=no
	says 127.0.0.27 one
	says 127.0.0.27 two
	says 127.0.0.27 three
	says 127.0.0.26 four
	refused 127.0.0.26 "$RATE_LINE"
	wait_for_log "$(end_re 127.0.0.26 refused) reason=rate "
	daemon_stats
	[ "$(stats_value rate)" -eq 1 ]
}

# -- timeout-penalty, penalty-max, expiry ------------------------------------------

@test "timeout-penalty: a source whose client timed out is refused, and served again once it expires" {
	# As OpenSSH's regress/penalty-expire.sh: a short penalty, refused
	# during it, served after it, found by asking the daemon again.
	start_daemon -o timeout=1 -o timeout-penalty=6 -o resolve=no
	t0=$(_now_ms)
	run --separate-stderr client --source 127.0.0.22 --no-shutdown --timeout 10 'abc'
	assert_output 'Error: timeout'
	wait_for_log "$(end_re 127.0.0.22 timeout) "
	pid=$(sed -n 's/^end client=127\.0\.0\.22 .* pid=\([0-9]*\) outcome=timeout .*/\1/p' "$DAEMON_LOG")
	reaped "$pid"		# the penalty is in force
	refused 127.0.0.22 "$PENALTY_LINE"
	wait_for_log "^end client=127\.0\.0\.22 port=[0-9]+ pid=$DAEMON_PID outcome=refused reason=timeout-penalty in=0 out=0 "
	says 127.0.0.23 'another source'
	wait_until 'served_now 127.0.0.22' 30
	t1=$(_now_ms)
	# Not before the timeout (1 s) and the penalty (6 s) have passed.
	[ $((t1 - t0)) -ge 7000 ] || fail "served again after $((t1 - t0)) ms"
	no_children
	daemon_stats
	[ "$(stats_value timeouts)" -eq 1 ]
	[ "$(stats_value timeout-penalty)" -ge 1 ]
	[ "$(stats_value crash-penalty)" -eq 0 ]
}

# penalties_scenario PENALTY-MAX: three held clients of one source; a
# watchdog timeout (timeout-penalty 50), a new client refused, a crash
# (crash-penalty 100), a new client refused, another timeout, a new client
# refused: each refusal counted under the latest cause.  Sets TOTAL: the
# seconds the crash's log line says the source is refused for.  (Crash
# lines are rate-limited: one crash only, so that its line is logged.)
penalties_scenario() {
	ulimit -c 0
	start_daemon -o crash-penalty=100 -o timeout-penalty=50 \
	    -o penalty-max="$1" -o resolve=no
	hold a --source 127.0.0.24
	hold b --source 127.0.0.24
	hold c --source 127.0.0.24
	pa=$(child_of a) pb=$(child_of b) pc=$(child_of c)
	# The watchdog's alarm, as it comes when a client outlives its timeout.
	kill -ALRM "$pa"
	wait_for_log "^child $pa \(client 127\.0\.0\.24\) stopped by its watchdog$"
	reaped "$pa"
	refused 127.0.0.24 "$PENALTY_LINE"
	daemon_stats
	[ "$(stats_value timeout-penalty)" -eq 1 ] || fail "latest cause not named"
	[ "$(stats_value crash-penalty)" -eq 0 ]
	kill -SEGV "$pb"
	wait_for_log "^child $pb \(client 127\.0\.0\.24\) killed by signal SIGSEGV, refusing 127\.0\.0\.24 for [0-9]+ s$"
	TOTAL=$(sed -n "s/^child $pb .* for \([0-9]*\) s\$/\1/p" "$DAEMON_LOG")
	reaped "$pb"
	refused 127.0.0.24 "$PENALTY_LINE"
	daemon_stats
	[ "$(stats_value crash-penalty)" -eq 1 ] || fail "latest cause not named"
	[ "$(stats_value timeout-penalty)" -eq 1 ]
	kill -ALRM "$pc"
	wait_for_log "^child $pc \(client 127\.0\.0\.24\) stopped by its watchdog$"
	reaped "$pc"
	refused 127.0.0.24 "$PENALTY_LINE"
	daemon_stats
	[ "$(stats_value timeout-penalty)" -eq 2 ] || fail "latest cause not named"
	[ "$(stats_value crash-penalty)" -eq 1 ]
	[ "$(stats_value timeouts)" -eq 2 ]
	[ "$(stats_value crashed)" -eq 1 ]
	says 127.0.0.25 'another source'
}

@test "penalties: crash and timeout penalties add up per source; the refusal names the latest cause" {
	penalties_scenario 600
	# 50 s, less the seconds between the timeout and the crash, plus 100.
	[ "$TOTAL" -gt 100 ] && [ "$TOTAL" -le 150 ] || fail "refused for $TOTAL s"
}

@test "penalty-max: penalties from several causes never add up beyond it" {
	penalties_scenario 120
	[ "$TOTAL" -eq 120 ]
}

@test "penalty-max: a single penalty longer than it is cut to it" {
	ulimit -c 0
	start_daemon -o crash-penalty=100 -o penalty-max=7 -o resolve=no
	hold a --source 127.0.0.24
	pa=$(child_of a)
	kill -SEGV "$pa"
	wait_for_log "^child $pa \(client 127\.0\.0\.24\) killed by signal SIGSEGV, refusing 127\.0\.0\.24 for 7 s$"
}

# -- the per-source table -----------------------------------------------------------

@test "sources: 65,536 sources fit, the soonest-expiring is reused, a source with a child never is" {
	probe=${top_builddir:-$BATS_TEST_DIRNAME/..}/tests/sources-probe
	[ -x "$probe" ] || skip "no $probe (make check builds it)"
	run "$probe"
	printf '%s\n' "$output"
	assert_success
	[ "$(grep -c '^ok ' <<<"$output")" -eq 6 ]
}

# -- defer-accept ---------------------------------------------------------------------

# silent_then_talking SOURCE: a client from SOURCE connects and says nothing;
# another one that speaks is served; the silent one has no child (and no
# Connection line).  Accepted first, it would have had one by then.
silent_then_talking() {
	hold s --source "$1" 'late\n'
	says 127.0.0.31 now
	no_children
	[ "$(log_count "^Connection from ${1//./\\.} ")" -eq 0 ] ||
	    fail "the silent client reached a child"
}

@test "defer-accept: a client that sends nothing reaches no child; one that sends data is served" {
	start_daemon -o defer-accept=600 -o resolve=no
	silent_then_talking 127.0.0.30
	# Once it speaks, the silent client is served too.
	release s
	assert_bytes "${H_OUT[s]}" 'You said:late\n'
	wait_for_log '^Connection from 127\.0\.0\.30 '
	no_children
	daemon_stats
	[ "$(stats_value served)" -eq 2 ]
}

@test "defer-accept: a reload sets it on the listeners, and turns it off again" {
	start_daemon -o resolve=no
	# Off: a silent client gets its child at once.
	hold s0 --source 127.0.0.32
	child_of s0 >/dev/null
	printf 'defer-accept 600\n' >"$CONF"
	signal_daemon HUP
	wait_for_log '^configuration reloaded$'
	silent_children=$(nchildren)
	hold s --source 127.0.0.30 'late\n'
	says 127.0.0.31 now
	[ "$(nchildren)" -eq "$silent_children" ] || fail "the silent client reached a child"
	[ "$(log_count '^Connection from 127\.0\.0\.30 ')" -eq 0 ]
	printf 'defer-accept 0\n' >"$CONF"
	signal_daemon HUP
	wait_until "[ \$(log_count '^configuration reloaded\$') -eq 2 ]"
	hold s2 --source 127.0.0.33
	child_of s2 >/dev/null
}

@test "defer-accept: it applies to the sockets systemd passes (LISTEN_FDS)" {
	command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate not installed"
	local -a user=() pass=()
	local v
	for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
		[ -z "${!v:-}" ] || pass+=(-E "$v")
	done
	[ "$(id -u)" != 0 ] || user=(-u nobody)
	PORT=$(free_port)
	export PORT DAEMON_LOG=$BATS_TEST_TMPDIR/daemon.log
	: >"$BATS_TEST_TMPDIR/empty.conf"
	systemd-socket-activate -l "127.0.0.1:$PORT" "${pass[@]}" "$SRVEXAMPLE" -d \
	    -f "$BATS_TEST_TMPDIR/empty.conf" -o resolve=no -o defer-accept=600 \
	    "${user[@]}" </dev/null >"$DAEMON_LOG" 2>&1 3>&- &
	export DAEMON_PID=$!
	wait_until "[ -n \"\$(ss -Hltn 'sport = :$PORT')\" ]" 5
	# The first client starts the daemon (exec'd by systemd-socket-activate).
	says 127.0.0.34 first
	wait_for_log '^ready: '
	grep -q '(socket activation)$' "$DAEMON_LOG"
	no_children
	silent_then_talking 127.0.0.30
}

# haproxy_stat PROXY SERVER FIELD: a field of HAProxy's "show stat" (CSV).
haproxy_stat() {
	"$PYTHON" - "$BATS_TEST_TMPDIR/haproxy.sock" "$@" <<-'EOF'
	import socket, sys
	s = socket.socket(socket.AF_UNIX)
	s.connect(sys.argv[1])
	s.sendall(b"show stat\n")
	data = b""
	while True:
	    b = s.recv(65536)
	    if not b:
	        break
	    data += b
	rows = [r.split(",") for r in data.decode().splitlines() if r]
	head = rows[0]
	head[0] = head[0].lstrip("# ")
	for r in rows[1:]:
	    if r[0] == sys.argv[2] and r[1] == sys.argv[3]:
	        print(r[head.index(sys.argv[4])])
	EOF
}

@test "defer-accept: behind HAProxy, a tcp-check that sends a line is served; a connect-only check never reaches a child" {
	[ -x "$HAPROXY" ] || skip "haproxy is not installed ($HAPROXY)"
	start_daemon -o defer-accept=600 -o resolve=no
	HPORT=$(free_port)
	# "check\n" as hex: tcp-check send takes a log-format string.
	cat >"$BATS_TEST_TMPDIR/haproxy.cfg" <<-EOF
	global
	    maxconn 64
	    stats socket $BATS_TEST_TMPDIR/haproxy.sock mode 600 level admin
	defaults
	    mode tcp
	    timeout connect 5s
	    timeout client 10s
	    timeout server 10s
	    timeout check 5s
	frontend fe
	    bind 127.0.0.1:$HPORT
	    default_backend be
	backend be
	    option tcp-check
	    tcp-check send-binary 636865636b0a
	    tcp-check expect string "You said:check"
	    server s1 127.0.0.1:$PORT check inter 200ms rise 1 fall 1 source 127.0.0.35
	backend be_connect_only
	    server s2 127.0.0.1:$PORT check inter 200ms rise 1 fall 1 source 127.0.0.36
	EOF
	"$HAPROXY" -db -f "$BATS_TEST_TMPDIR/haproxy.cfg" </dev/null \
	    >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 3>&- &
	track_pid $!
	wait_until "[ \"\$(haproxy_stat be s1 check_status 2>/dev/null)\" = L7OK ]" 10 ||
	    fail "no L7OK check: $(cat "$BATS_TEST_TMPDIR/haproxy.log")"
	wait_until "[ \"\$(haproxy_stat be_connect_only s2 check_status 2>/dev/null)\" = L4OK ]" 10
	[ "$(haproxy_stat be s1 status)" = UP ]
	wait_for_log "$(end_re 127.0.0.35 ok) "
	# A client through HAProxy is served.
	run --separate-stderr "$PYTHON" "$CLIENT" --port "$HPORT" --source 127.0.0.37 \
	    --timeout 5 'through haproxy\n'
	assert_success
	assert_output 'You said:through haproxy'
	# Several connect-only checks later, none of them reached a child.
	n=$(log_count '^Connection from 127\.0\.0\.35 ')
	wait_until "[ \$(log_count '^Connection from 127\\.0\\.0\\.35 ') -ge $((n + 3)) ]" 10
	[ "$(log_count '^Connection from 127\.0\.0\.36 ')" -eq 0 ]
	[ "$(log_count "$(end_re 127.0.0.36 '[a-z]+')")" -eq 0 ]
}
