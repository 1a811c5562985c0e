#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until are single-quoted on purpose (evaluated later); each @test runs
# in its own subshell, so its assignments are meant to stay there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# PROXY protocol (issue 7): proxy-protocol and proxy-from.  A real HAProxy in
# front of the daemon (send-proxy, send-proxy-v2), crafted v1 and v2 headers
# sent directly, the limits and rules applied to the real client, and the
# configuration errors.  The daemon listens on 127.0.0.1 and trusts only
# 127.0.0.1; real clients are documentation addresses (192.0.2.0/24,
# 2001:db8::/32) or 127.0.0.2, which only the header can name.

load test_helper

HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
V2SIG='\r\n\r\n\x00\r\nQUIT\n'
# v2 PROXY TCP4 192.0.2.9:4660 -> 10.0.0.1:3456, no TLVs
V2_TCP4="${V2SIG}\\x21\\x11\\x00\\x0c\\xc0\\x00\\x02\\x09\\x0a\\x00\\x00\\x01\\x12\\x34\\x0d\\x80"

# -- helpers local to this file ------------------------------------------------

# start_proxied [ARGS...]: the daemon behind a balancer on 127.0.0.1.
start_proxied() {
	start_daemon -o resolve=no -o proxy-protocol=yes \
	    -o proxy-from=127.0.0.1 "$@"
}

# v1 ADDR PORT: a v1 TCP4 header naming client ADDR:PORT.
v1() {
	printf 'PROXY TCP4 %s 127.0.0.1 %s %s\\r\\n' "$1" "$2" "$PORT"
}

# assert_proxied_serves: a client behind a v1 header is still answered.
assert_proxied_serves() {
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.200 40000)Hello there!\\n"
	assert_success
	assert_output 'You said:Hello there!'
	wait_for_log '^Connection from 192\.0\.2\.200 \[192\.0\.2\.200\] 40000$'
}

# assert_header_refused DATA REASON [CLIENT-ARGS...]: DATA gets no answer,
# the connection is closed and logged as refused for REASON, counted, and
# the daemon goes on serving.  Sets REFUSED_EOF_AT (when the close came).
assert_header_refused() {
	local data=$1 reason=$2
	shift 2
	run --separate-stderr client --timeout 10 "$@" -- "$data"
	assert_success		# the daemon closed the connection (EOF)
	assert_output ''
	REFUSED_EOF_AT=$(report_value eof-at)
	wait_for_log "^end client=127\.0\.0\.1 port=[0-9]+ pid=$DAEMON_PID outcome=refused reason=$reason in=0 out=0 "
	[ "$(log_count '^Connection from')" -eq 0 ] || fail "a refused header was served"
	assert_proxied_serves
	no_children
	daemon_stats
	[ "$(stats_value proxy)" -eq 1 ]
	[ "$(stats_value refused)" -eq 1 ]
	[ "$(stats_value served)" -eq 1 ]
}

# check_conf ARGS...: run srvexample ARGS (with -u as start_daemon passes it).
check_conf() {
	local -a ua
	mapfile -t ua < <(user_args)
	run --separate-stderr "$SRVEXAMPLE" "${ua[@]}" "$@"
}

# child_titled REGEX: a child of the daemon whose process title matches
# (after the parent's verdict, the title names the real client).
child_titled() {
	local c
	for c in $(children_of "$DAEMON_PID"); do
		tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null | grep -Eq -- "$1" && return 0
	done
	return 1
}

# port_listening PORT: something listens on 127.0.0.1:PORT.
port_listening() {
	awk -v p="$(printf ':%04X' "$1")" '$4 == "0A" && $2 ~ p "$" { f = 1 }
	    END { exit !f }' /proc/net/tcp
}

# start_haproxy OPTION: HAProxy in the foreground on 127.0.0.1:HPORT in front
# of the daemon, its server line with OPTION (send-proxy, send-proxy-v2).
# Sets HPORT; teardown stops it (track_pid).
start_haproxy() {
	local cfg=$BATS_TEST_TMPDIR/haproxy.cfg
	[ -x "$HAPROXY" ] || skip "haproxy is not installed ($HAPROXY)"
	HPORT=$(free_port)
	cat >"$cfg" <<-EOF
	global
	    maxconn 64
	defaults
	    mode tcp
	    timeout connect 5s
	    timeout client 10s
	    timeout server 10s
	frontend fe
	    bind 127.0.0.1:$HPORT
	    default_backend be
	backend be
	    server s1 127.0.0.1:$PORT $1
	EOF
	"$HAPROXY" -db -f "$cfg" </dev/null >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 3>&- &
	HAPROXY_PID=$!
	track_pid "$HAPROXY_PID"
	if ! wait_until "port_listening $HPORT || ! pid_alive $HAPROXY_PID" 10 ||
	    ! pid_alive "$HAPROXY_PID"; then
		cat "$BATS_TEST_TMPDIR/haproxy.log" >&2
		fail "haproxy did not start"
	fi
}

# through_haproxy OPTION: a client from 127.0.0.2 through HAProxy is answered
# and logged under its own address and port.
through_haproxy() {
	local cport
	start_proxied
	start_haproxy "$1"
	run --separate-stderr "$PYTHON" "$CLIENT" --port "$HPORT" --source 127.0.0.2 \
	    --timeout 5 'through haproxy\n'
	assert_success
	assert_output 'You said:through haproxy'
	cport=$(report_value port)
	[ -n "$cport" ]
	wait_for_log "^Connection from 127\.0\.0\.2 \[127\.0\.0\.2\] $cport\$"
	wait_for_log "^end client=127\.0\.0\.2 port=$cport pid=[0-9]+ outcome=ok in=16 out=25 "
	# The second line HAProxy forwards is served the same way.
	run --separate-stderr "$PYTHON" "$CLIENT" --port "$HPORT" --source 127.0.0.2 \
	    --timeout 5 'again\n'
	assert_output 'You said:again'
	no_children
	daemon_stats
	[ "$(stats_value served)" -eq 2 ]
	[ "$(stats_value proxy)" -eq 0 ]
}

# -- a real HAProxy in front ----------------------------------------------------

@test "proxy: through HAProxy send-proxy (v1) the log names the real client" {
	through_haproxy send-proxy
}

@test "proxy: through HAProxy send-proxy-v2 the log names the real client" {
	through_haproxy send-proxy-v2
}

# -- crafted headers: served ----------------------------------------------------

@test "proxy: v1 TCP4: the real client is logged, the line after the header answered" {
	start_proxied
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.7 5555)hello\\n"
	assert_success
	assert_output 'You said:hello'
	wait_for_log '^Connection from 192\.0\.2\.7 \[192\.0\.2\.7\] 5555$'
	wait_for_log '^end client=192\.0\.2\.7 port=5555 pid=[0-9]+ outcome=ok in=6 out=15 '
	# The header and the line in pieces: still exactly the line.
	run --separate-stderr client --timeout 5 --pieces 6 --gap 0.05 \
	    "$(v1 192.0.2.8 5556)in pieces\\n"
	assert_output 'You said:in pieces'
	wait_for_log '^end client=192\.0\.2\.8 port=5556 .* outcome=ok in=10 '
}

@test "proxy: IPv4 clients are logged as inet_ntop(3) writes them, at every digit count" {
	local a
	start_proxied
	# addr.c formats IPv4 itself: 0, 9, 10, 99, 100, 199, 200 and 255 octets.
	for a in 0.9.10.99 100.199.200.255 255.0.0.0 1.22.133.4; do
		run --separate-stderr client --timeout 5 "$(v1 "$a" 5000)x\\n"
		assert_success
		assert_output 'You said:x'
		wait_for_log "^Connection from ${a//./\\.} \\[${a//./\\.}\\] 5000\$"
		wait_for_log "^end client=${a//./\\.} port=5000 .* outcome=ok "
	done
}

@test "proxy: v1 TCP6 names an IPv6 client" {
	start_proxied
	run --separate-stderr client --timeout 5 \
	    "PROXY TCP6 2001:db8::17 2001:db8::1 40001 $PORT\\r\\nsix\\n"
	assert_success
	assert_output 'You said:six'
	wait_for_log '^Connection from 2001:db8::17 \[2001:db8::17\] 40001$'
}

@test "proxy: v1 UNKNOWN and v2 LOCAL are served as the balancer itself" {
	start_proxied
	run --separate-stderr client --timeout 5 'PROXY UNKNOWN\r\nunknown\n'
	assert_output 'You said:unknown'
	cport=$(report_value port)
	wait_for_log "^Connection from 127\.0\.0\.1 \[127\.0\.0\.1\] $cport\$"
	run --separate-stderr client --timeout 5 "${V2SIG}\\x20\\x00\\x00\\x00local\\n"
	assert_output 'You said:local'
	cport=$(report_value port)
	wait_for_log "^Connection from 127\.0\.0\.1 \[127\.0\.0\.1\] $cport\$"
}

@test "proxy: v2 PROXY TCP4, with and without TLVs (skipped)" {
	start_proxied
	run --separate-stderr client --timeout 5 "${V2_TCP4}v2\\n"
	assert_success
	assert_output 'You said:v2'
	wait_for_log '^Connection from 192\.0\.2\.9 \[192\.0\.2\.9\] 4660$'
	# Length 12 + 7: a TLV of type 0x04 (NOOP) with 4 bytes of value.
	run --separate-stderr client --timeout 5 \
	    "${V2SIG}\\x21\\x11\\x00\\x13\\xc0\\x00\\x02\\x0a\\x0a\\x00\\x00\\x01\\x12\\x35\\x0d\\x80\\x04\\x00\\x04TLV!tlv\\n"
	assert_output 'You said:tlv'
	wait_for_log '^Connection from 192\.0\.2\.10 \[192\.0\.2\.10\] 4661$'
}

# -- crafted headers: refused ---------------------------------------------------

@test "proxy: a missing header is refused (bad signature)" {
	start_proxied
	assert_header_refused 'hello\n' proxy-bad-signature
}

@test "proxy: a bad v2 signature is refused" {
	start_proxied
	assert_header_refused '\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c' proxy-bad-signature
}

@test "proxy: a bad family is refused (v1 TCP5, v2 AF_UNIX)" {
	start_proxied
	assert_header_refused "PROXY TCP5 192.0.2.1 127.0.0.1 1 $PORT\\r\\nx\\n" proxy-bad-family
}

@test "proxy: a v2 AF_UNIX family is refused" {
	start_proxied
	assert_header_refused "${V2SIG}\\x21\\x31\\x00\\xd8$(printf '\\x00%.0s' $(seq 216))x\\n" \
	    proxy-bad-family
}

@test "proxy: a v1 address that is not the family's is refused" {
	start_proxied
	assert_header_refused "PROXY TCP4 2001:db8::1 127.0.0.1 1 $PORT\\r\\nx\\n" proxy-bad-address
}

@test "proxy: an oversized v1 line is refused" {
	start_proxied
	assert_header_refused "PROXY TCP4 192.0.2.1 127.0.0.1 1 $PORT $(printf 'x%.0s' $(seq 100))\\r\\n" \
	    proxy-too-long
}

@test "proxy: an oversized v2 header is refused" {
	start_proxied
	# Length 0x0800: 2048 bytes of addresses and TLVs, over the 1024 taken.
	assert_header_refused "${V2SIG}\\x21\\x11\\x08\\x00" proxy-too-long
}

@test "proxy: a truncated header is refused at the timeout" {
	start_proxied -o timeout=1
	assert_header_refused 'PROXY TCP4 192.0.2.1 127' proxy-timeout
	float_test "$REFUSED_EOF_AT" '>=' 0.9
	float_test "$REFUSED_EOF_AT" '<' 3
}

@test "proxy: a header cut by the end of the connection is refused" {
	start_proxied
	assert_header_refused "${V2SIG}\\x21\\x11\\x00\\x0c\\xc0\\x00" proxy-truncated --shutdown
}

@test "proxy: a header from an address not in proxy-from is refused, no child" {
	start_daemon -o resolve=no -o proxy-protocol=yes -o proxy-from=127.0.0.2 \
	    -o proxy-from=192.0.2.0/24
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.7 5555)hello\\n"
	assert_success
	assert_output ''
	float_test "$(report_value eof-at)" '<' 0.5
	wait_for_log "^end client=127\.0\.0\.1 port=[0-9]+ pid=$DAEMON_PID outcome=refused reason=proxy-untrusted "
	# From a trusted balancer the same header is served.
	run --separate-stderr client --source 127.0.0.2 --timeout 5 "$(v1 192.0.2.7 5555)hello\\n"
	assert_output 'You said:hello'
	no_children
	daemon_stats
	[ "$(stats_value proxy)" -eq 1 ]
	[ "$(stats_value served)" -eq 1 ]
	[ "$(log_count '^Connection from')" -eq 1 ]
}

# -- limits and rules on the real client ----------------------------------------

@test "proxy: max-per-source counts the real client, not the balancer" {
	start_proxied -o max-per-source=1
	hold a --first "$(v1 192.0.2.1 1001)" 'a\n'
	hold b --first "$(v1 192.0.2.2 1002)" 'b\n'
	# Both served at once through one balancer address (a child logs this
	# line once the parent's verdict let it serve; titles are not visible
	# under valgrind).
	wait_for_log '^Connection from 192\.0\.2\.1 \[192\.0\.2\.1\] 1001$'
	wait_for_log '^Connection from 192\.0\.2\.2 \[192\.0\.2\.2\] 1002$'
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.1 1003)c\\n"
	assert_success
	assert_output 'Error: too many connections from your address'
	wait_for_log '^end client=192\.0\.2\.1 port=1003 pid=[0-9]+ outcome=refused reason=max-per-source '
	release a
	assert_bytes "${H_OUT[a]}" 'You said:a\n'
	release b
	assert_bytes "${H_OUT[b]}" 'You said:b\n'
	no_children
	daemon_stats
	[ "$(stats_value max-per-source)" -eq 1 ]
	[ "$(stats_value served)" -eq 2 ]
	# The slot is free again.
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.1 1004)d\\n"
	assert_output 'You said:d'
}

@test "proxy: allow and deny apply to the real client" {
	start_proxied -o deny=192.0.2.66 -o allow=192.0.2.0/24
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.66 2001)no\\n"
	assert_success
	assert_output ''
	wait_for_log '^end client=192\.0\.2\.66 port=2001 pid=[0-9]+ outcome=denied in=0 out=0 '
	# The balancer itself is not in allow, yet its clients are served.
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.67 2002)yes\\n"
	assert_output 'You said:yes'
	run --separate-stderr client --timeout 5 "$(v1 198.51.100.1 2003)other\\n"
	assert_output ''
	no_children
	daemon_stats
	[ "$(stats_value denied)" -eq 2 ]
	[ "$(stats_value served)" -eq 1 ]
}

@test "proxy: crash-penalty refuses the real client whose child crashed" {
	[ -z "${SRVEXAMPLE_VALGRIND:-}" ] || skip "under valgrind the process title of a child is not in its cmdline"
	ulimit -c 0
	start_proxied
	hold a --first "$(v1 192.0.2.5 3001)" 'a\n'
	wait_until 'child_titled "client 192\.0\.2\.5 port 3001"'
	pid_a=$(child_for_port "${H_PORT[a]}")
	kill -SEGV "$pid_a"
	wait_for_log "^child $pid_a \(client 192\.0\.2\.5\) killed by signal SIGSEGV, refusing 192\.0\.2\.5 for 60 s$"
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.5 3002)again\\n"
	assert_output 'Error: try again later'
	wait_for_log '^end client=192\.0\.2\.5 port=3002 .* outcome=refused reason=crash-penalty '
	assert_proxied_serves
}

# -- configuration ----------------------------------------------------------------

@test "proxy: proxy-protocol yes without proxy-from is a configuration error" {
	check_conf -n -f /dev/null -o proxy-protocol=yes
	assert_failure
	assert_stderr 'proxy-protocol yes needs at least one proxy-from address'
	refute_stderr 'configuration OK'
}

@test "proxy: a bad proxy-from is a configuration error" {
	printf 'proxy-protocol yes\nproxy-from 1.2.3\n' >"$BATS_TEST_TMPDIR/bad.conf"
	check_conf -n -f "$BATS_TEST_TMPDIR/bad.conf"
	assert_failure
	assert_stderr "bad\.conf:2: invalid address \"1\.2\.3\"\$"
	check_conf -n -f /dev/null \
	    -o proxy-protocol=yes -o proxy-from=192.0.2.0/33
	assert_failure
	assert_stderr 'invalid prefix length in "192.0.2.0/33"'
}

@test "proxy: -o proxy-from replaces the file's list; -nv prints both keywords" {
	printf 'proxy-protocol yes\nproxy-from 10.0.0.1\nproxy-from 10.0.0.2\n' \
	    >"$BATS_TEST_TMPDIR/p.conf"
	check_conf -nv -f "$BATS_TEST_TMPDIR/p.conf"
	assert_success
	assert_line 'proxy-protocol yes'
	assert_line 'proxy-from 10.0.0.1/32'
	assert_line 'proxy-from 10.0.0.2/32'
	check_conf -nv -f "$BATS_TEST_TMPDIR/p.conf" \
	    -o proxy-from=192.0.2.0/24 -o proxy-from=2001:db8::/32
	assert_success
	assert_line 'proxy-from 192.0.2.0/24'
	assert_line 'proxy-from 2001:db8::/32'
	refute_line 'proxy-from 10.0.0.1/32'
	check_conf -nv -f /dev/null
	assert_line 'proxy-protocol no'
	refute_line --partial 'proxy-from'
}

@test "proxy: SIGHUP applies a new proxy-from to new connections" {
	CONF=$BATS_TEST_TMPDIR/srvexample.conf
	printf 'proxy-protocol yes\nproxy-from 127.0.0.2\nresolve no\n' >"$CONF"
	start_daemon
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.7 5555)hi\\n"
	assert_output ''
	wait_for_log 'reason=proxy-untrusted'
	printf 'proxy-protocol yes\nproxy-from 127.0.0.1\nresolve no\n' >"$CONF"
	signal_daemon HUP
	wait_for_log '^configuration reloaded$'
	run --separate-stderr client --timeout 5 "$(v1 192.0.2.7 5555)hi\\n"
	assert_output 'You said:hi'
	wait_for_log '^Connection from 192\.0\.2\.7 \[192\.0\.2\.7\] 5555$'
}
