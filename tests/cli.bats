#!/usr/bin/env bats
# cli.bats: flags, -n, configuration errors as FILE:LINE: message, precedence,
# and startup failures that must exit 1 with one clear message and leave
# nothing running (contract.md: "Command line", "Exit status").

# status, output, lines and stderr come from bats' run; DAEMON_PREFIX, CONF
# and the like are read by test_helper.bash.
# shellcheck disable=SC2154,SC2034
load test_helper

USAGE='usage: srvexample [-dhinVv] [-C addr=address] [-f file] [-l address] [-o keyword=value] [-p port] [-u user]'

# As root, -n also checks that `user` exists; the built-in srvexample user may
# not exist on a test machine, so good configurations name nobody.
RUN_AS=nobody

# conf LINE...: write CONF with these lines (a comment and a blank line
# first, so the first given line is line 3).
conf() {
	CONF=$BATS_TEST_TMPDIR/test.conf
	{
		echo '# srvexample test configuration'
		echo
		printf '%s\n' "$@"
	} >"$CONF"
}

# check_bad_line LINE REGEX: LINE on line 3 is rejected by -n with
# `srvexample: FILE:3: ` followed by a message matching REGEX, exit 1.
check_bad_line() {
	conf "$1" "user $RUN_AS"
	run --separate-stderr "$SRVEXAMPLE" -n -f "$CONF"
	# Explicit returns: callers may use this in a || list, where set -e is off.
	[ "$status" -eq 1 ] || {
		fail "'$1': exit $status, expected 1; stderr: $stderr"
		return 1
	}
	assert_stderr "^srvexample: ${CONF//./\\.}:3: $2\$" || return 1
	refute_stderr '^configuration OK$' || return 1
}

# hold_port ADDR PORT: a python listener occupies ADDR PORT (tracked).
hold_port() {
	local ready=$BATS_TEST_TMPDIR/holder.ready
	rm -f "$ready"
	"$PYTHON" -c '
import socket, sys, time
a, p, r = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET)
s.bind((a, p))
s.listen(1)
open(r, "w").close()
time.sleep(60)' "$1" "$2" "$ready" 3>&- &
	track_pid $!
	wait_until "[ -e '$ready' ]" 5
}

# port_is_free ADDR PORT: nothing listens on (or holds) ADDR PORT.
port_is_free() {
	"$PYTHON" -c '
import socket, sys
a, p = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET)
s.bind((a, p))' "$1" "$2"
}

# assert_nothing_left: no process of this test's binary copy runs.
assert_nothing_left() {
	local left
	left=$(procs_of_exe "$SRVEXAMPLE_COPY")
	[ -z "$left" ] || fail "processes left running: $left"
}

@test "cli: -h prints the usage on stdout and exits 0" {
	run --separate-stderr "$SRVEXAMPLE" -h
	assert_success
	[ "${lines[0]}" = "$USAGE" ] || fail "first line: ${lines[0]}"
	[ -z "$stderr" ] || fail "stderr: $stderr"
}

@test "cli: --help prints the usage on stdout and exits 0" {
	run --separate-stderr "$SRVEXAMPLE" --help
	assert_success
	[ "${lines[0]}" = "$USAGE" ] || fail "first line: ${lines[0]}"
	[ -z "$stderr" ] || fail "stderr: $stderr"
}

@test "cli: -V and --version print 'srvexample VERSION' on stdout" {
	local v
	run --separate-stderr "$SRVEXAMPLE" -V
	assert_success
	assert_output --regexp '^srvexample [0-9]+\.[0-9]+(\.[0-9]+)?([-.+~][0-9A-Za-z.]+)?$'
	[ -z "$stderr" ]
	v=$output
	if [ -n "${SRVEXAMPLE_VERSION:-}" ]; then
		assert_equal "$v" "srvexample $SRVEXAMPLE_VERSION"
	fi
	run --separate-stderr "$SRVEXAMPLE" --version
	assert_success
	assert_equal "$output" "$v"
}

@test "cli: a bad flag prints the usage on stderr and exits 1" {
	local flag
	for flag in -Z --bogus; do
		run --separate-stderr "$SRVEXAMPLE" "$flag"
		[ "$status" -eq 1 ] || fail "$flag: exit $status"
		[ -z "$output" ] || fail "$flag: stdout not empty: $output"
		assert_stderr_line "$USAGE"
	done
}

@test "cli: a flag without its argument is a usage error" {
	local flag
	for flag in -f -l -o -p -u; do
		run --separate-stderr "$SRVEXAMPLE" -n "$flag"
		[ "$status" -eq 1 ] || fail "$flag: exit $status"
		assert_stderr_line "$USAGE"
	done
}

@test "cli: -n with a good file says 'configuration OK' on stderr, exits 0" {
	conf 'listen 127.0.0.1' 'listen ::1' '' 'port 3456' "user $RUN_AS" \
	    'group nogroup' 'pidfile none' 'timeout 5' 'max-line 100' \
	    'resolve no' 'resolve-cache 120' 'backlog 16' 'log stderr' \
	    'log-facility daemon' '   # an indented comment' 'chroot none'
	run --separate-stderr "$SRVEXAMPLE" -n -f "$CONF"
	assert_success
	assert_equal "$stderr" "configuration OK"
	[ -z "$output" ] || fail "stdout without -v: $output"
}

@test "cli: -n accepts a comment after a value" {
	conf "user $RUN_AS" 'port 4000 # the test port'
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF"
	assert_success
	assert_line 'port 4000'
}

@test "cli: -n: unknown keyword" {
	check_bad_line 'foo bar' 'unknown keyword "foo"'
}

@test "cli: -n: a number that is not one" {
	check_bad_line 'port abc' '.*"abc".*'
	check_bad_line 'timeout 5s' '.*"5s".*'
	check_bad_line 'max-line 12x' '.*"12x".*'
}

@test "cli: -n: numbers out of range" {
	check_bad_line 'port 0' 'port: "0" is too small'
	check_bad_line 'port 65536' 'port: "65536" is too large'
	check_bad_line 'port 99999999999999999999' 'port: .*'
	check_bad_line 'port -1' 'port: .*"-1".*'
}

@test "cli: -n: addresses are numeric and strict" {
	local a bad=
	for a in 1.2.3 256.1.1.1 1.2.3.4.5 localhost ::g; do
		check_bad_line "listen $a" "(listen: )?invalid address \"${a//./\\.}\"" 2>&1 ||
		    bad+="listen $a: $stderr"$'\n'
	done
	# A prefix length is no address to listen on either (wording free).
	check_bad_line 'listen 1.2.3.4/24' '.*"1\.2\.3\.4/24".*' 2>&1 ||
	    bad+="listen 1.2.3.4/24: $stderr"$'\n'
	[ -z "$bad" ] || fail "rejected wrongly or not at all:"$'\n'"$bad"
}

@test "cli: -n: a keyword without its value" {
	check_bad_line 'port' '.*port.*'
	check_bad_line 'listen' '.*listen.*'
}

@test "cli: -n: bad yes/no, log sink and facility values" {
	check_bad_line 'resolve maybe' '.*"maybe".*'
	check_bad_line 'log nowhere' '.*"nowhere".*'
	check_bad_line 'log-facility nosuch' '.*"nosuch".*'
}

@test "cli: -n: resolve-cache out of range or not a number names the value" {
	check_bad_line 'resolve-cache -1' 'resolve-cache: .*"-1".*'
	check_bad_line 'resolve-cache 86401' 'resolve-cache: "86401" is too large'
	check_bad_line 'resolve-cache soon' 'resolve-cache: .*"soon".*'
}

@test "cli: -n: the abuse keywords take their ranges and nothing beyond" {
	check_bad_line 'rate-per-source -1' 'rate-per-source: .*"-1".*'
	check_bad_line 'rate-per-source 1000001' 'rate-per-source: "1000001" is too large'
	check_bad_line 'timeout-penalty 86401' 'timeout-penalty: "86401" is too large'
	check_bad_line 'penalty-max 0' 'penalty-max: "0" is too small'
	check_bad_line 'penalty-max 86401' 'penalty-max: "86401" is too large'
	check_bad_line 'defer-accept 3601' 'defer-accept: "3601" is too large'
	check_bad_line 'defer-accept 5s' 'defer-accept: .*"5s".*'
	check_bad_line 'exempt 192.0.2' 'invalid address "192\.0\.2"'
	check_bad_line 'exempt 192.0.2.0/33' '.*"192\.0\.2\.0/33".*'
}

@test "cli: -nv prints the abuse keywords: defaults, both ends of each range, the exempt list" {
	conf "user $RUN_AS"
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF"
	assert_success
	assert_line 'rate-per-source 0'
	assert_line 'timeout-penalty 0'
	assert_line 'penalty-max 600'
	assert_line 'defer-accept 0'
	refute_line --partial 'exempt '
	conf "user $RUN_AS" 'rate-per-source 1000000' 'timeout-penalty 86400' \
	    'penalty-max 1' 'defer-accept 3600' 'exempt 192.0.2.0/24' \
	    'exempt 2001:db8::/32'
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF"
	assert_success
	assert_line 'rate-per-source 1000000'
	assert_line 'timeout-penalty 86400'
	assert_line 'penalty-max 1'
	assert_line 'defer-accept 3600'
	[ "$(printf '%s\n' "${lines[@]}" | grep '^exempt ')" = \
	    "$(printf 'exempt 192.0.2.0/24\nexempt 2001:db8::/32')" ] ||
	    fail "exempt list: $output"
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF" -o penalty-max=86400 \
	    -o exempt=198.51.100.7
	assert_success
	assert_line 'penalty-max 86400'
	[ "$(printf '%s\n' "${lines[@]}" | grep '^exempt ')" = 'exempt 198.51.100.7/32' ] ||
	    fail "-o exempt= did not replace the list: $output"
}

@test "cli: -nv prints resolve-cache 60 by default, right after resolve" {
	conf "user $RUN_AS"
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF"
	assert_success
	assert_line 'resolve-cache 60'
	[ "$(printf '%s\n' "${lines[@]}" | grep -A1 '^resolve ')" = \
	    "$(printf 'resolve yes\nresolve-cache 60')" ] ||
	    fail "resolve-cache does not follow resolve: $output"
	# Both ends of the range are accepted, from the file and from -o.
	conf "user $RUN_AS" 'resolve-cache 86400'
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF"
	assert_success
	assert_line 'resolve-cache 86400'
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF" -o resolve-cache=0
	assert_success
	assert_line 'resolve-cache 0'
}

@test "cli: -n reports every bad line, each with its number" {
	conf 'foo 1' "user $RUN_AS" 'port 0'
	run --separate-stderr "$SRVEXAMPLE" -n -f "$CONF"
	[ "$status" -eq 1 ]
	assert_stderr "^srvexample: ${CONF//./\\.}:3: unknown keyword \"foo\"\$"
	assert_stderr "^srvexample: ${CONF//./\\.}:5: port: \"0\" is too small\$"
}

@test "cli: -o errors name the option" {
	run --separate-stderr "$SRVEXAMPLE" -n -u "$RUN_AS" -o listen=1.2.3
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: -o listen=1\.2\.3: invalid address "1\.2\.3"$'
	run --separate-stderr "$SRVEXAMPLE" -n -u "$RUN_AS" -o foo=bar
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: -o foo=bar: unknown keyword "foo"$'
	run --separate-stderr "$SRVEXAMPLE" -n -u "$RUN_AS" -o port
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: -o port: '
}

@test "cli: -l and -p errors name the value" {
	run --separate-stderr "$SRVEXAMPLE" -n -u "$RUN_AS" -l 1.2.3
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: .*invalid address "1\.2\.3"$'
	run --separate-stderr "$SRVEXAMPLE" -n -u "$RUN_AS" -p 0
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: .*"0" is too small$'
	run --separate-stderr "$SRVEXAMPLE" -n -u "$RUN_AS" -p 65536
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: .*"65536" is too large$'
}

@test "cli: a missing -f file is an error" {
	run --separate-stderr "$SRVEXAMPLE" -n -u "$RUN_AS" -f "$BATS_TEST_TMPDIR/nonexistent.conf"
	[ "$status" -eq 1 ]
	assert_stderr "^srvexample: ${BATS_TEST_TMPDIR//./\\.}/nonexistent\.conf: No such file or directory\$"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -u "$RUN_AS" -l 127.0.0.1 \
	    -p "$(free_port)" -f "$BATS_TEST_TMPDIR/nonexistent.conf"
	[ "$status" -eq 1 ]
	assert_stderr 'nonexistent\.conf: No such file or directory$'
}

@test "cli: a missing default file means built-in defaults" {
	local default
	default=$(strings "$SRVEXAMPLE" | grep -E '^/.*/srvexample\.conf$' | head -n 1) ||
	    skip "cannot find the default configuration path in the binary"
	[ -n "$default" ] || skip "cannot find the default configuration path in the binary"
	[ ! -e "$default" ] || skip "$default exists"
	run --separate-stderr "$SRVEXAMPLE" -nv -u "$RUN_AS"
	assert_success
	assert_line 'port 3456'
	assert_line 'timeout 30'
	assert_line 'max-line 4096'
}

@test "cli: -o overrides the file" {
	conf "user $RUN_AS" 'timeout 5' 'max-line 4'
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF" -o timeout=7
	assert_success
	assert_line 'timeout 7'
	refute_line 'timeout 5'
	assert_line 'max-line 4'
}

@test "cli: -o overrides the file in the running daemon too" {
	conf 'max-line 4'
	start_daemon -o max-line=16
	run client --out "$BATS_TEST_TMPDIR/got" '0123456789abcdef\n'
	assert_success
	assert_bytes "$BATS_TEST_TMPDIR/got" 'You said:0123456789abcdef\n'
}

@test "cli: a repeated keyword on the command line replaces the file's list" {
	conf "user $RUN_AS" 'listen 127.0.0.2' 'listen ::1'
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF" -o listen=127.0.0.1
	assert_success
	assert_line 'listen 127.0.0.1'
	refute_line 'listen 127.0.0.2'
	refute_line 'listen ::1'
	[ "$(printf '%s\n' "$output" | grep -c '^listen ')" -eq 1 ]
}

@test "cli: -l given twice listens on both addresses" {
	conf "user $RUN_AS"
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF" -l 127.0.0.1 -l ::1
	assert_success
	assert_line 'listen 127.0.0.1'
	assert_line 'listen ::1'
}

@test "cli: the daemon listens only where the command line says, not where the file says" {
	conf 'listen 127.0.0.3'
	start_daemon
	wait_for_log "^listening on 127\.0\.0\.1 port $PORT\$"
	[ "$(log_count '^listening on ')" -eq 1 ]
	[ "$(log_count '127\.0\.0\.3')" -eq 0 ]
}

@test "cli: -l, -p and -u are shorthands for listen, port and user" {
	conf
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF" -l 127.0.0.5 -p 4567 -u nobody
	assert_success
	assert_line 'listen 127.0.0.5'
	assert_line 'port 4567'
	assert_line 'user nobody'
	[ "$(printf '%s\n' "$output" | grep -c '^listen ')" -eq 1 ]
}

@test "cli: the command line beats the file, the file beats the defaults" {
	conf "user $RUN_AS" 'port 4000'
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF"
	assert_success
	assert_line 'port 4000'
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF" -p 4001
	assert_success
	assert_line 'port 4001'
	refute_line 'port 4000'
}

@test "cli: -d makes stderr the default log; an explicit log keyword wins" {
	conf "user $RUN_AS"
	run --separate-stderr "$SRVEXAMPLE" -nv -f "$CONF"
	assert_success
	assert_line 'log syslog'
	run --separate-stderr "$SRVEXAMPLE" -nv -d -f "$CONF"
	assert_success
	assert_line 'log stderr'
	conf "user $RUN_AS" 'log syslog'
	run --separate-stderr "$SRVEXAMPLE" -nv -d -f "$CONF"
	assert_success
	assert_line 'log syslog'
}

@test "cli: -n starts nothing" {
	local port
	port=$(free_port)
	conf "user $RUN_AS"
	copy_binary
	run --separate-stderr timeout 10 "$SRVEXAMPLE_COPY" -n -f "$CONF" -l 127.0.0.1 -p "$port"
	assert_success
	assert_nothing_left
	port_is_free 127.0.0.1 "$port"
	run --separate-stderr timeout 10 "$SRVEXAMPLE_COPY" -n -d -f "$CONF" -l 127.0.0.1 -p "$port"
	assert_success
	assert_nothing_left
	port_is_free 127.0.0.1 "$port"
}

@test "cli: a busy port: exit 1, 'Address already in use' naming address and port" {
	local port
	port=$(free_port)
	hold_port 127.0.0.1 "$port"
	conf "user $RUN_AS"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f "$CONF" -l 127.0.0.1 -p "$port"
	[ "$status" -eq 1 ] || fail "exit $status; stderr: $stderr"
	assert_stderr "^srvexample: bind 127\.0\.0\.1 port $port: Address already in use\$"
	refute_stderr '^ready: '
}

@test "cli: a busy port without -d: exit 1 in the foreground, no pidfile, nothing left" {
	local port pidfile
	port=$(free_port)
	hold_port 127.0.0.1 "$port"
	make_world_tmpdir
	pidfile=$WORLD_TMPDIR/x.pid
	conf "user $RUN_AS"
	copy_binary
	run --separate-stderr timeout 10 "$SRVEXAMPLE_COPY" -f "$CONF" -l 127.0.0.1 -p "$port" \
	    -o pidfile="$pidfile"
	[ "$status" -eq 1 ] || fail "exit $status; stderr: $stderr"
	assert_stderr "^srvexample: bind 127\.0\.0\.1 port $port: Address already in use\$"
	[ ! -e "$pidfile" ] || fail "pidfile left: $(cat "$pidfile")"
	assert_nothing_left
}

@test "cli: the second of two addresses busy: exit 1 and the first is released" {
	local port
	require_ipv6
	port=$(free_port ::1)
	port_is_free 127.0.0.1 "$port" || skip "port $port busy on 127.0.0.1"
	hold_port ::1 "$port"
	conf "user $RUN_AS"
	copy_binary
	run --separate-stderr timeout 10 "$SRVEXAMPLE_COPY" -d -f "$CONF" -l 127.0.0.1 -l ::1 -p "$port"
	[ "$status" -eq 1 ] || fail "exit $status; stderr: $stderr"
	assert_stderr "^srvexample: bind ::1 port $port: Address already in use\$"
	assert_nothing_left
	port_is_free 127.0.0.1 "$port"
}

@test "cli: an address that is not local: exit 1 naming address, port and cause" {
	local port
	port=$(free_port)
	conf "user $RUN_AS"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f "$CONF" -l 192.0.2.1 -p "$port"
	[ "$status" -eq 1 ] || fail "exit $status; stderr: $stderr"
	# contract.md's form: bind ADDR port N: CAUSE, an optional hint after it.
	assert_stderr "^srvexample: bind 192\.0\.2\.1 port $port: Cannot assign requested address( \(.*\))?\$"
}

@test "cli: an invalid listen address on the command line: exit 1, nothing started" {
	conf "user $RUN_AS"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f "$CONF" -l 1.2.3 -p "$(free_port)"
	[ "$status" -eq 1 ]
	assert_stderr 'invalid address "1\.2\.3"$'
	refute_stderr '^(listening on|ready:) '
}

@test "cli: a privileged port as non-root: 'ports below 1024' message, exit 1" {
	local port=1023 start
	start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)
	[ "$start" -gt "$port" ] || skip "ip_unprivileged_port_start is $start: any user may bind $port"
	local -a as_user=()
	if [ "$(id -u)" = 0 ]; then
		as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all)
	fi
	run --separate-stderr timeout 10 "${as_user[@]}" "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 -p "$port"
	[ "$status" -eq 1 ] || fail "exit $status; stderr: $stderr"
	assert_stderr "^srvexample: bind 127\.0\.0\.1 port $port: Permission denied \(ports below 1024 need root or CAP_NET_BIND_SERVICE\)\$"
}

@test "cli: an unknown user as root names the user (-n and start)" {
	require_root
	conf
	run --separate-stderr "$SRVEXAMPLE" -n -f "$CONF" -u nosuchuser
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: user "nosuchuser": no such user$'
	copy_binary
	run --separate-stderr timeout 10 "$SRVEXAMPLE_COPY" -d -f "$CONF" -l 127.0.0.1 \
	    -p "$(free_port)" -u nosuchuser
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: user "nosuchuser": no such user$'
	refute_stderr '^ready: '
	assert_nothing_left
}

@test "cli: as root, the built-in user must exist too" {
	require_root
	! id srvexample >/dev/null 2>&1 || skip "user srvexample exists here"
	conf
	run --separate-stderr "$SRVEXAMPLE" -n -f "$CONF"
	[ "$status" -eq 1 ]
	assert_stderr '^srvexample: user "srvexample": no such user$'
}

# -- -n -C addr=: the admission dry run, as a decision table -----------------

# decide ADDRESS EXPECTED-LINES...: -n -C addr=ADDRESS with $CONF (and the
# options in the array DECIDE_ARGS) prints exactly these lines and exits 0.
DECIDE_ARGS=()
decide() {
	local addr=$1 want
	shift
	want=$(printf '%s\n' "$@")
	run --separate-stderr "$SRVEXAMPLE" -n -f "$CONF" "${DECIDE_ARGS[@]}" \
	    -C "addr=$addr"
	assert_success
	assert_equal "$output" "$want"
}

@test "cli: -n -C addr=: first matching rule, the source as source-prefix masks it" {
	conf "user $RUN_AS" 'deny 192.0.2.128/25' 'allow 192.0.2.0/24' \
	    'allow 2001:db8::/32' 'proxy-from 198.51.100.1'
	decide 192.0.2.7 'verdict allow' 'rule allow 192.0.2.0/24' \
	    'source 192.0.2.7/32' 'exempt no' 'proxy-trusted no'
	decide 192.0.2.200 'verdict deny' 'rule deny 192.0.2.128/25' \
	    'source 192.0.2.200/32' 'exempt no' 'proxy-trusted no'
	# IPv6: one host's /64 is one source by default
	decide 2001:db8:1:2:3:4:5:6 'verdict allow' 'rule allow 2001:db8::/32' \
	    'source 2001:db8:1:2::/64' 'exempt no' 'proxy-trusted no'
	# an IPv4-mapped address is the IPv4 client
	decide ::ffff:192.0.2.7 'verdict allow' 'rule allow 192.0.2.0/24' \
	    'source 192.0.2.7/32' 'exempt no' 'proxy-trusted no'
	# no match while allow rules exist: denied by default
	decide 198.51.100.1 'verdict deny' 'rule default' \
	    'source 198.51.100.1/32' 'exempt no' 'proxy-trusted yes'
}

@test "cli: -n -C addr=: no rule matches and no allow rule exists: allowed" {
	conf "user $RUN_AS" 'deny 10.0.0.0/8' 'source-prefix 24:48'
	decide 192.0.2.7 'verdict allow' 'rule default' 'source 192.0.2.0/24' \
	    'exempt no' 'proxy-trusted no'
	decide 10.1.2.3 'verdict deny' 'rule deny 10.0.0.0/8' 'source 10.1.2.0/24' \
	    'exempt no' 'proxy-trusted no'
}

@test "cli: -n -C addr=: exempt sources; allow and deny still apply to them" {
	conf "user $RUN_AS" 'exempt 192.0.2.0/28' 'exempt 2001:db8::/48' \
	    'deny 192.0.2.3' 'exempt 198.51.100.1'
	decide 192.0.2.7 'verdict allow' 'rule default' 'source 192.0.2.7/32' \
	    'exempt yes' 'proxy-trusted no'
	decide 192.0.2.3 'verdict deny' 'rule deny 192.0.2.3/32' \
	    'source 192.0.2.3/32' 'exempt yes' 'proxy-trusted no'
	decide 192.0.2.16 'verdict allow' 'rule default' 'source 192.0.2.16/32' \
	    'exempt no' 'proxy-trusted no'
	decide 2001:db8:0:1::5 'verdict allow' 'rule default' \
	    'source 2001:db8:0:1::/64' 'exempt yes' 'proxy-trusted no'
	decide 2001:db8:1::5 'verdict allow' 'rule default' \
	    'source 2001:db8:1::/64' 'exempt no' 'proxy-trusted no'
	decide ::ffff:198.51.100.1 'verdict allow' 'rule default' \
	    'source 198.51.100.1/32' 'exempt yes' 'proxy-trusted no'
}

@test "cli: -n -C addr=: -o exempt= replaces the file's exempt list" {
	conf "user $RUN_AS" 'exempt 192.0.2.0/24' 'exempt 203.0.113.5'
	DECIDE_ARGS=(-o exempt=198.51.100.0/24)
	decide 192.0.2.7 'verdict allow' 'rule default' 'source 192.0.2.7/32' \
	    'exempt no' 'proxy-trusted no'
	decide 203.0.113.5 'verdict allow' 'rule default' 'source 203.0.113.5/32' \
	    'exempt no' 'proxy-trusted no'
	decide 198.51.100.9 'verdict allow' 'rule default' \
	    'source 198.51.100.9/32' 'exempt yes' 'proxy-trusted no'
	# Several -o exempt= make up the new list together.
	DECIDE_ARGS=(-o exempt=198.51.100.0/24 -o exempt=203.0.113.5)
	decide 203.0.113.5 'verdict allow' 'rule default' 'source 203.0.113.5/32' \
	    'exempt yes' 'proxy-trusted no'
	decide 192.0.2.7 'verdict allow' 'rule default' 'source 192.0.2.7/32' \
	    'exempt no' 'proxy-trusted no'
}

@test "cli: -n -C addr=: a bad address or -C without -n is an error" {
	conf "user $RUN_AS"
	run --separate-stderr "$SRVEXAMPLE" -n -f "$CONF" -C addr=192.0.2
	assert_failure 1
	assert_stderr 'not a numeric IPv4 or IPv6 address'
	[ -z "$output" ] || fail "stdout on a bad address: $output"
	run --separate-stderr "$SRVEXAMPLE" -f "$CONF" -C addr=192.0.2.7
	assert_failure 1
	assert_stderr '\-C needs -n'
	run --separate-stderr "$SRVEXAMPLE" -n -f "$CONF" -C 192.0.2.7
	assert_failure 1
	assert_stderr 'addr=ADDRESS'
}
