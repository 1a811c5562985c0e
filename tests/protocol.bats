#!/usr/bin/env bats
# protocol.bats: the line protocol of SPEC.md, byte for byte, and the per-client
# log lines of contract.md.  Received bytes are always compared as files (cmp),
# never through shell variables, which drop NUL bytes.

# status, output, lines and stderr come from bats' run; DAEMON_PREFIX, CONF
# and the like are read by test_helper.bash.
# shellcheck disable=SC2154,SC2034
load test_helper

GOT=

setup() {
	common_setup
	GOT=$BATS_TEST_TMPDIR/got
}

# end_record CLIENTPORT: the `end` record DAEMON_LOG has for that client port
# (waits for it: the child logs it after answering).
end_record() {
	wait_for_log "^end client=127\.0\.0\.1 port=$1 " 5 || return 1
	grep -a "^end client=127\.0\.0\.1 port=$1 " "$DAEMON_LOG"
}

@test "protocol: a LF line is echoed exactly, then the server closes" {
	start_daemon
	run client --out "$GOT" 'Hello there!\n'
	assert_success
	assert_output --partial 'client: eof '
	assert_bytes "$GOT" 'You said:Hello there!\n'
}

@test "protocol: a CRLF line is echoed with its CRLF" {
	start_daemon
	run client --out "$GOT" 'Hello there!\r\n'
	assert_success
	assert_bytes "$GOT" 'You said:Hello there!\r\n'
}

@test "protocol: a lone CR is data, not a terminator" {
	start_daemon
	run client --out "$GOT" 'a\rb\r\n'
	assert_success
	assert_bytes "$GOT" 'You said:a\rb\r\n'
}

@test "protocol: 8-bit clean: every byte value but LF is echoed as sent" {
	local data
	data=$("$PYTHON" -c 'print("".join("\\x%02x" % b for b in range(256) if b != 10) + "\\n")')
	start_daemon
	run client --out "$GOT" "$data"
	assert_success
	assert_bytes "$GOT" "You said:$data"
	[ "$(wc -c <"$GOT")" -eq $((9 + 256)) ]
}

@test "protocol: NUL bytes and 0xff at both ends of the line are kept" {
	start_daemon
	run client --out "$GOT" '\x00\x00abc\x00\xff\xfe\xff\n'
	assert_success
	assert_bytes "$GOT" 'You said:\x00\x00abc\x00\xff\xfe\xff\n'
}

@test "protocol: a partial line at EOF is echoed without a terminator" {
	start_daemon
	run client --shutdown --out "$GOT" 'no newline here'
	assert_success
	assert_output --partial 'client: eof '
	assert_bytes "$GOT" 'You said:no newline here'
}

@test "protocol: a binary partial line at EOF is echoed byte for byte" {
	start_daemon
	run client --shutdown --out "$GOT" '\x00\xff\r'
	assert_success
	assert_bytes "$GOT" 'You said:\x00\xff\r'
}

@test "protocol: an empty connection is closed without an answer (outcome=eof)" {
	local cport
	start_daemon
	run client --shutdown --out "$GOT"
	assert_success
	assert_output --partial 'client: eof received=0 '
	[ ! -s "$GOT" ]
	cport=$(report_value port)
	run end_record "$cport"
	assert_success
	assert_output --regexp ' outcome=eof in=0 out=0 '
	assert_serves
}

@test "protocol: only the first line is answered" {
	start_daemon
	run client --out "$GOT" 'first\nsecond\nthird\n'
	assert_success
	assert_bytes "$GOT" 'You said:first\n'
}

@test "protocol: only the first line is answered when the client half-closes" {
	start_daemon
	run client --shutdown --out "$GOT" 'first\r\nsecond'
	assert_success
	assert_bytes "$GOT" 'You said:first\r\n'
}

@test "protocol: a line of exactly max-line bytes is accepted (LF and CRLF)" {
	start_daemon -o max-line=16
	run client --out "$GOT" '0123456789abcdef\n'
	assert_success
	assert_bytes "$GOT" 'You said:0123456789abcdef\n'
	run client --out "$GOT" '0123456789abcdef\r\n'
	assert_success
	assert_bytes "$GOT" 'You said:0123456789abcdef\r\n'
	run client --shutdown --out "$GOT" '0123456789abcdef'
	assert_success
	assert_bytes "$GOT" 'You said:0123456789abcdef'
}

@test "protocol: max-line + 1 bytes is refused with 'Error: line too long'" {
	local cport
	start_daemon -o max-line=16
	run client --out "$GOT" '0123456789abcdefg\n'
	assert_success
	assert_bytes "$GOT" 'Error: line too long\n'
	cport=$(report_value port)
	run end_record "$cport"
	assert_success
	assert_output --regexp ' outcome=too-long '
	assert_serves
}

@test "protocol: max-line + 1 bytes without newline is refused at once, not at the deadline" {
	start_daemon -o max-line=16 -o timeout=20
	# The client neither ends the line nor closes: only the byte count can
	# trigger the answer, so a server that buffers on would time out here.
	run client --timeout 5 --out "$GOT" --size 17
	assert_success
	assert_bytes "$GOT" 'Error: line too long\n'
	float_test "$(report_value eof-at)" '<' 2
	assert_serves
}

@test "protocol: a 1 MB line without newline gets 'Error: line too long' promptly" {
	local st
	start_daemon -o timeout=20
	run client --timeout 10 --stop-on-eof --out "$GOT" --size 1048576
	st=$status
	# The linger is bounded (about 1 s, a few hundred KiB), so the rest of
	# the megabyte may legitimately end in a reset after the answer.
	[ "$st" -eq 0 ] || [ "$st" -eq 3 ] || fail "client status $st: $output"
	assert_bytes "$GOT" 'Error: line too long\n'
	float_test "$(report_value first-byte-at)" '<' 3
	assert_serves
}

@test "protocol: a line may arrive in many pieces" {
	start_daemon
	run client --pieces 14 --gap 0.03 --out "$GOT" 'Hello there!\r\n'
	assert_success
	assert_bytes "$GOT" 'You said:Hello there!\r\n'
	run client --pieces 3 --gap 0.2 --out "$GOT" '\x00ab\xffcd\n'
	assert_success
	assert_bytes "$GOT" 'You said:\x00ab\xffcd\n'
}

@test "protocol: a max-line line in one-byte pieces is accepted" {
	start_daemon -o max-line=16
	run client --pieces 17 --gap 0.01 --out "$GOT" '0123456789abcdef\n'
	assert_success
	assert_bytes "$GOT" 'You said:0123456789abcdef\n'
}

@test "protocol: no line before the deadline gets 'Error: timeout' (timeout=1)" {
	local cport t
	start_daemon -o timeout=1
	run client --timeout 5 --out "$GOT"
	assert_success
	assert_bytes "$GOT" 'Error: timeout\n'
	t=$(report_value eof-at)
	float_test "$t" '>=' 0.9
	float_test "$t" '<' 2.5
	cport=$(report_value port)
	run end_record "$cport"
	assert_success
	assert_output --regexp ' outcome=timeout '
	assert_serves
}

@test "protocol: a partial line without its end still gets 'Error: timeout'" {
	start_daemon -o timeout=1
	run client --timeout 5 --out "$GOT" 'half a li'
	assert_success
	assert_bytes "$GOT" 'Error: timeout\n'
	float_test "$(report_value eof-at)" '<' 2.5
}

@test "protocol: a dripping client is cut at the deadline, not kept alive per byte" {
	local t
	start_daemon -o timeout=1
	# 40 bytes, one every 0.2 s: 8 s if every byte restarted the clock.
	run client --timeout 6 --drip 0.2 --stop-on-eof --out "$GOT" \
	    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n'
	assert_bytes "$GOT" 'Error: timeout\n'
	t=$(report_value eof-at)
	float_test "$t" '>=' 0.9
	float_test "$t" '<' 2.5
	assert_serves
}

@test "protocol: lingering close: a line plus 60 KB more sent at once still gets the answer, no reset" {
	start_daemon
	run client --out "$GOT" --size 61440 'Hello there!\n'
	assert_success
	assert_output --partial 'client: eof '
	refute_output --partial 'send-error'
	assert_bytes "$GOT" 'You said:Hello there!\n'
}

@test "protocol: lingering close: a client that keeps sending 60 KB while reading gets the answer, no reset" {
	start_daemon
	run client --out "$GOT" --keep-sending 61440 'Hello there!\n'
	assert_success
	assert_output --partial 'client: eof '
	refute_output --partial 'send-error'
	assert_bytes "$GOT" 'You said:Hello there!\n'
	[ "$(report_value sent)" -eq $((13 + 61440)) ]
}

@test "protocol: lingering is bounded: a client that never stops sending is cut after about a second" {
	local st cport
	start_daemon
	# 1 KiB every 10 ms for up to 6 s: only the server's bound can end this.
	run client --timeout 6 --out "$GOT" --keep-sending 600000 --chunk 1024 \
	    --chunk-gap 0.01 'Hello there!\n'
	st=$status
	[ "$st" -eq 0 ] || [ "$st" -eq 3 ] || fail "client status $st: $output"
	assert_bytes "$GOT" 'You said:Hello there!\n'
	float_test "$(report_value elapsed)" '<' 3.5
	cport=$(report_value port)
	run end_record "$cport"
	assert_success
	assert_output --regexp ' outcome=ok '
}

@test "protocol: lingering close also protects an error answer" {
	start_daemon -o max-line=16
	run client --out "$GOT" --size 61440 '0123456789abcdefghij\n'
	assert_success
	assert_output --partial 'client: eof '
	assert_bytes "$GOT" 'Error: line too long\n'
}

@test "protocol: the answer and the server's FIN come at once, before any linger" {
	start_daemon
	# The client sends its line and then nothing, and never closes: the
	# answer and the server's FIN must still come at once.
	run client --timeout 5 --out "$GOT" 'Hello there!\n'
	assert_success
	float_test "$(report_value eof-at)" '<' 1
	assert_bytes "$GOT" 'You said:Hello there!\n'
}

@test "protocol: a client reset mid-request does not hurt the daemon" {
	local cport
	start_daemon
	run client --rst 'half a li'
	assert_success
	cport=$(report_value port)
	run end_record "$cport"
	assert_success
	refute_output --partial 'outcome=ok'
	assert_serves
}

@test "protocol: a client reset right after its line: no SIGPIPE death, no penalty" {
	start_daemon
	for _ in 1 2 3 4 5; do
		client --rst --size 30000 'Hello there!\n' 2>/dev/null
	done
	wait_until "[ \$(log_count '^end client=') -ge 5 ]" 5
	[ "$(log_count 'killed by signal')" -eq 0 ]
	assert_serves
}

@test "log: 'Connection from NAME [IP] PORT' names the client (resolve yes)" {
	local cport name
	start_daemon
	run client --out "$GOT" 'Hello there!\n'
	assert_success
	cport=$(report_value port)
	# NAME is what the resolver says for 127.0.0.1, or the IP itself.
	name=$(getent hosts 127.0.0.1 | awk '{ print $2; exit }')
	wait_for_log "^Connection from [^ ]+ \[127\.0\.0\.1\] $cport\$"
	run grep -a "^Connection from [^ ]* \[127\.0\.0\.1\] $cport\$" "$DAEMON_LOG"
	assert_output --regexp "^Connection from (${name//./\\.}|127\.0\.0\.1) "
}

@test "log: resolve no shows the IP as NAME" {
	local cport
	start_daemon -o resolve=no
	run client --out "$GOT" 'Hello there!\n'
	assert_success
	cport=$(report_value port)
	wait_for_log "^Connection from 127\.0\.0\.1 \[127\.0\.0\.1\] $cport\$"
}

@test "log: one end record per client: client, port, child pid, outcome=ok, bytes, duration" {
	local cport pid
	start_daemon -o resolve=no
	run client --out "$GOT" 'Hello there!\n'
	assert_success
	cport=$(report_value port)
	run end_record "$cport"
	assert_success
	assert_output --regexp "^end client=127\.0\.0\.1 port=$cport pid=[0-9]+ outcome=ok in=13 out=22 duration=[0-9]+\.[0-9]{3}\$"
	[ "${#lines[@]}" -eq 1 ]
	pid=${output#*pid=}
	pid=${pid%% *}
	[ "$pid" != "$DAEMON_PID" ]
	# The Connection line comes first.
	run grep -an -e "^Connection from 127\.0\.0\.1 \[127\.0\.0\.1\] $cport\$" \
	    -e "^end client=127\.0\.0\.1 port=$cport " "$DAEMON_LOG"
	[[ ${lines[0]} == *Connection* ]]
	[[ ${lines[1]} == *end\ client* ]]
}

@test "log: client bytes are logged escaped and capped (-v)" {
	local line
	start_daemon -v -v -o resolve=no
	line='\x1b[31mred\x1b[0m\x00\x07\r\x7f\xff'
	line+=$(printf 'A%.0s' $(seq 1 200))
	run client --out "$GOT" "$line"'\n'
	assert_success
	wait_for_log '^end client='
	# The ESC arrived in the log, escaped (vis(3) or \x1b style) ...
	grep -Eaq '\\(x1b|033|e|\^\[)\[31mred' "$DAEMON_LOG" ||
	    fail "the client's bytes are not in the -vv log in escaped form"
	# ... no raw control or 8-bit byte reached it ...
	run env LC_ALL=C grep -c $'[\x01-\x08\x0b-\x1f\x7f\x80-\xff]' "$DAEMON_LOG"
	assert_output 0
	run env LC_ALL=C grep -c -a -P '\x00' "$DAEMON_LOG"
	assert_output 0
	# ... and it was capped: 200 A sent, at most 64 characters logged.
	grep -aq 'AAAAAAAAAA' "$DAEMON_LOG"
	run grep -ac 'A\{65\}' "$DAEMON_LOG"
	assert_output 0
}

@test "protocol: IPv6: a client on ::1 is served and logged with its IPv6 address" {
	local cport
	require_ipv6
	LISTEN=::1 start_daemon -o resolve=no
	wait_for_log "^listening on ::1 port $PORT\$"
	run client --host ::1 --out "$GOT" 'Hello over IPv6\r\n'
	assert_success
	assert_bytes "$GOT" 'You said:Hello over IPv6\r\n'
	cport=$(report_value port)
	wait_for_log "^Connection from ::1 \[::1\] $cport\$"
	wait_for_log "^end client=::1 port=$cport pid=[0-9]+ outcome=ok "
}
