#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until are single-quoted on purpose (evaluated later); each @test runs
# in its own subshell, so its assignments are meant to stay there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# fail2ban (issue 16): etc/fail2ban's filter over logs the real daemon wrote,
# checked with Debian's fail2ban-regex in the -d (stderr) form and in the
# syslog form (the daemon's own syslog datagrams, received on a private
# /dev/log), and a real fail2ban server in a network namespace that bans a
# source srvexample keeps denying, with nftables.
#
# srvexample logs one refusal or denial record per 5 seconds at most, so
# each kind of refusal comes from a daemon of its own here: every record is
# then logged, and the counts below are exact.

load test_helper

F2B_SRC=$TESTS_DIR/../etc/fail2ban
# Debian's fail2ban configuration: common.conf, the actions, jail.conf.
FAIL2BAN_ETC=${FAIL2BAN_ETC:-/etc/fail2ban}

# -- helpers local to this file (test_helper.bash has the shared ones) --------

# require_fail2ban: skip unless Debian's fail2ban is installed.
require_fail2ban() {
	command -v fail2ban-regex >/dev/null &&
	    [ -f "$FAIL2BAN_ETC/filter.d/common.conf" ] ||
	    skip "fail2ban is not installed (scripts/install-deps installs it)"
}

# f2b_confdir DIR: a private fail2ban configuration directory: fail2ban's
# own fail2ban.conf, jail.conf, paths, common filter and nftables actions
# (none of the machine's jails), and srvexample's filter and jails.
f2b_confdir() {
	local d=$1
	mkdir -p "$d/filter.d" "$d/action.d" "$d/jail.d" "$d/fail2ban.d"
	cp "$FAIL2BAN_ETC/fail2ban.conf" "$FAIL2BAN_ETC/jail.conf" \
	    "$FAIL2BAN_ETC"/paths-*.conf "$d/"
	cp "$FAIL2BAN_ETC/filter.d/common.conf" "$d/filter.d/"
	cp "$FAIL2BAN_ETC"/action.d/nftables*.conf "$d/action.d/"
	cp "$F2B_SRC/filter.d/srvexample.conf" "$d/filter.d/"
	cp "$F2B_SRC/jail.d/srvexample.conf" "$d/jail.d/"
}

# known_keyword KEYWORD=VALUE: this srvexample accepts the keyword (rate and
# timeout penalties come with another change; their parts run once it does).
known_keyword() {
	"$SRVEXAMPLE" -n -f /dev/null -u nobody -o "$1" >/dev/null 2>&1
}

# end_re SOURCE OUTCOME: an ERE for the end record of a client from SOURCE.
end_re() {
	printf 'end client=%s port=[0-9]+ pid=[0-9]+ outcome=%s( |$)' \
	    "${1//./\\.}" "$2"
}

# wait_end SOURCE OUTCOME: wait for that end record in DAEMON_LOG.
wait_end() {
	wait_for_log "$(end_re "$1" "$2")" 5
}

# -- the daemon in either log form --------------------------------------------

# start_d ARGS...: start the daemon logging in the form FORM names: stderr
# (-d, start_daemon) or syslog (start_syslog_daemon).
start_d() {
	if [ "$FORM" = syslog ]; then
		start_syslog_daemon "$@"
	else
		start_daemon "$@"
	fi
}

# start_syslog_daemon ARGS...: srvexample -d -o log=syslog in a mount
# namespace whose /dev/log is a private syslog_sink.py socket (an overlay on
# /dev makes the node when the machine has no /dev/log).  DAEMON_LOG is the
# sink's file, in the format of a syslog daemon's file.  Root only.
start_syslog_daemon() {
	local n=$((SYSLOG_N + 1)) sock log dir
	local -a ua listen_args=()
	SYSLOG_N=$n
	sock=$BATS_TEST_TMPDIR/log.$n.sock
	log=$BATS_TEST_TMPDIR/daemon.$n.syslog
	dir=$BATS_TEST_TMPDIR/dev.$n
	mkdir -p "$dir/up" "$dir/work"
	: >"$log"
	"$PYTHON" "$TESTS_DIR/syslog_sink.py" "$sock" "$log" testhost 300 \
	    </dev/null 3>&- &
	SINK_PID=$!		# a job: teardown stops it if part_done did not
	wait_until "[ -S '$sock' ]" 5
	mapfile -t ua < <(user_args)
	[ -z "$LISTEN" ] || listen_args=(-l "$LISTEN")
	CONF=$BATS_TEST_TMPDIR/srvexample.conf
	: >"$CONF"
	PORT=$(free_port "$LISTEN")
	unshare --mount -- sh -c '
		mount --make-rprivate / &&
		mount -t overlay overlay \
		    -o "lowerdir=/dev,upperdir=$1/up,workdir=$1/work" /dev &&
		{ [ -e /dev/log ] || : >/dev/log; } &&
		mount --bind "$2" /dev/log || exit 1
		shift 2
		exec "$@"' sh "$dir" "$sock" \
	    "$SRVEXAMPLE" -d -f "$CONF" "${listen_args[@]}" -p "$PORT" \
	    "${ua[@]}" -o log=syslog "$@" \
	    </dev/null >"$dir/stderr" 2>&1 3>&- &
	export PORT DAEMON_PID=$! DAEMON_LOG=$log
	if ! wait_until "grep -aq 'srvexample\[[0-9]*\]: ready: ' '$log' ||
	    ! pid_alive $DAEMON_PID" 10 || ! pid_alive "$DAEMON_PID"; then
		cat "$dir/stderr" "$log" >&2
		fail "the daemon logging to syslog did not start"
	fi
	_seen "$DAEMON_PID"
}

# -- the scenario: one daemon per part ------------------------------------------

# part_done NORMAL AGGRESSIVE: the part's daemon logged NORMAL records that
# the default mode must match, AGGRESSIVE more for mode=aggressive; stop it
# and keep its log.
part_done() {
	WANT_NORMAL=$((WANT_NORMAL + $1))
	WANT_AGGRESSIVE=$((WANT_AGGRESSIVE + $1 + $2))
	stop_daemon
	if [ -n "${SINK_PID:-}" ]; then
		kill "$SINK_PID"
		wait "$SINK_PID" || true
		SINK_PID=
	fi
	LOGS+=("$DAEMON_LOG")
}

# part_basic: served, denied, too-long, timed out and silent (eof) clients.
part_basic() {
	start_d -o deny=127.0.0.2 -o timeout=1 -o max-line=8 -o resolve=no
	client --timeout 5 --expect 'You said:hello\n' 'hello\n'
	client --timeout 5 --source 127.0.0.3 --expect 'You said:hi\n' 'hi\n'
	client --timeout 5 --source 127.0.0.2 --expect '' 'x\n'
	client --timeout 5 --source 127.0.0.4 --expect 'Error: line too long\n' \
	    'waytoolong\n'
	client --timeout 5 --source 127.0.0.5 --no-shutdown \
	    --expect 'Error: timeout\n' 'abc'
	client --timeout 5 --source 127.0.0.6 --shutdown --expect '' ''
	wait_end 127.0.0.1 ok
	wait_end 127.0.0.3 ok
	wait_end 127.0.0.2 denied
	wait_end 127.0.0.4 too-long
	wait_end 127.0.0.5 timeout
	wait_end 127.0.0.6 eof
	part_done 3 1
}

# part_per_source: max-per-source 1 with a held client; the held one served.
part_per_source() {
	start_d -o max-per-source=1 -o resolve=no
	hold_client --source 127.0.0.9 'held\n'
	client --timeout 5 --source 127.0.0.9 'second\n' >/dev/null
	wait_end 127.0.0.9 'refused reason=max-per-source'
	release_client
	wait_end 127.0.0.9 ok
	part_done 1 0
}

# part_crash: a child killed by SIGSEGV, then its source refused.
part_crash() {
	local pid
	ulimit -c 0
	start_d -o crash-penalty=60 -o resolve=no
	hold_client --source 127.0.0.12
	pid=$(child_for_port "$HOLD_PORT")
	kill -SEGV "$pid"
	wait_for_log "child $pid \(client 127\.0\.0\.12\) killed by signal SIGSEGV"
	client --timeout 5 --source 127.0.0.12 'again\n' >/dev/null
	wait_end 127.0.0.12 'refused reason=crash-penalty'
	release_client || true		# its connection is gone
	part_done 1 0
}

# part_busy: fork failing (RLIMIT_NPROC 1): "busy", matched only when
# aggressive; every busy record the daemon logged counts.
part_busy() {
	local soft n
	start_d -o resolve=no
	soft=$(proc_limit "$DAEMON_PID" nproc SOFT)
	set_soft_limit "$DAEMON_PID" nproc 1
	client --timeout 5 --source 127.0.0.13 --expect 'Error: server busy\n' \
	    'one\n'
	wait_end 127.0.0.13 'refused reason=busy'
	set_soft_limit "$DAEMON_PID" nproc "$soft"
	wait_until 'client --timeout 3 --expect "You said:back\n" "back\n" 2>/dev/null' 5
	n=$(log_count 'outcome=refused reason=busy')
	part_done 0 "$n"
}

# part_proxied ARGS: behind a balancer (proxy-from 127.0.0.1): a served and a
# denied real client, and one cut at the timeout; the records name them.
part_proxied() {
	start_d -o proxy-protocol=yes -o proxy-from=127.0.0.1 -o timeout=1 \
	    -o deny=192.0.2.7 -o resolve=no
	client --timeout 5 --expect 'You said:hello\n' \
	    "PROXY TCP4 192.0.2.9 127.0.0.1 40000 $PORT\\r\\nhello\\n"
	client --timeout 5 --expect '' \
	    "PROXY TCP4 192.0.2.7 127.0.0.1 40001 $PORT\\r\\nhello\\n"
	client --timeout 5 --no-shutdown --expect 'Error: timeout\n' \
	    "PROXY TCP4 192.0.2.8 127.0.0.1 40002 $PORT\\r\\nabc"
	wait_end 192.0.2.9 ok
	wait_end 192.0.2.7 denied
	wait_end 192.0.2.8 timeout
	part_done 2 0
}

# part_bad_header: a PROXY header error: the record names the balancer, which
# must never be banned.
part_bad_header() {
	start_d -o proxy-protocol=yes -o proxy-from=127.0.0.1 -o resolve=no
	client --timeout 5 --expect '' 'hello\n'
	wait_end 127.0.0.1 'refused reason=proxy-bad-signature'
	part_done 0 0
}

# part_untrusted: a PROXY port reached by a peer that is no balancer.
part_untrusted() {
	start_d -o proxy-protocol=yes -o proxy-from=127.0.0.1 -o resolve=no
	client --timeout 5 --source 127.0.0.8 --expect '' 'hello\n'
	wait_end 127.0.0.8 'refused reason=proxy-untrusted'
	part_done 1 0
}

# part_ipv6: on ::1, a refusal and a too-long line name an IPv6 client.
part_ipv6() {
	LISTEN=::1 start_d -o max-per-source=1 -o max-line=8 -o resolve=no
	hold_client --host ::1 'held\n'
	client --host ::1 --timeout 5 'second\n' >/dev/null
	wait_end ::1 'refused reason=max-per-source'
	release_client
	client --host ::1 --timeout 5 --expect 'Error: line too long\n' \
	    'waytoolong\n'
	client --host ::1 --timeout 5 --expect 'You said:six\n' 'six\n'
	wait_end ::1 too-long
	[ "$(log_count "$(end_re ::1 ok)")" -eq 2 ]
	part_done 2 0
}

# part_rate / part_timeout_penalty: once srvexample has these keywords.
part_rate() {
	start_d -o rate-per-source=1 -o resolve=no
	client --timeout 5 --source 127.0.0.10 --expect 'You said:one\n' 'one\n'
	client --timeout 5 --source 127.0.0.10 'two\n' >/dev/null
	wait_end 127.0.0.10 'refused reason=rate'
	part_done 1 0
}
part_timeout_penalty() {
	start_d -o timeout-penalty=60 -o timeout=1 -o resolve=no
	client --timeout 5 --source 127.0.0.11 --no-shutdown \
	    --expect 'Error: timeout\n' 'abc'
	wait_end 127.0.0.11 timeout
	client --timeout 5 --source 127.0.0.11 'again\n' >/dev/null
	wait_end 127.0.0.11 'refused reason=timeout-penalty'
	part_done 2 0
}

# scenario: every part, their logs in ALL_LOG; sets WANT_NORMAL and
# WANT_AGGRESSIVE (how many records each mode must match).
scenario() {
	WANT_NORMAL=0 WANT_AGGRESSIVE=0 SYSLOG_N=0
	LOGS=()
	part_basic
	part_per_source
	part_crash
	part_busy
	part_proxied
	part_bad_header
	part_untrusted
	if "$PYTHON" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' \
	    2>/dev/null; then
		part_ipv6
	fi
	if known_keyword rate-per-source=1; then
		part_rate
	fi
	if known_keyword timeout-penalty=1; then
		part_timeout_penalty
	fi
	ALL_LOG=$BATS_TEST_TMPDIR/all.log
	cat "${LOGS[@]}" >"$ALL_LOG"
}

# -- fail2ban-regex ------------------------------------------------------------

# f2b_regex FILTER [OPTIONS...]: fail2ban-regex over ALL_LOG with the private
# configuration's FILTER (e.g. "srvexample[mode=aggressive]").
f2b_regex() {
	local filter=$1
	shift
	run --separate-stderr fail2ban-regex -c "$F2B_CONF" "$@" "$ALL_LOG" "$filter"
	[ "$status" -eq 0 ] || fail "fail2ban-regex: status $status: $stderr"
}

# check_filter FILTER WANT ABUSE-ERE: fail2ban-regex matches exactly WANT
# lines of ALL_LOG (its summary and its list agree), exactly the end records
# whose outcome is ABUSE-ERE, with the record's client as the address; no
# served client, no "Connection from" line and no balancer's record.
check_filter() {
	local filter=$1 want=$2 abuse=$3 expected got
	f2b_regex "$filter"
	printf '%s\n' "$output" | grep -Eq "^Lines: [0-9]+ lines, 0 ignored, $want matched, " ||
	    fail "$filter: not $want matched: $(printf '%s\n' "$output" | grep '^Lines:')"
	expected=$(grep -aE "end client=\S+ port=[0-9]+ pid=[0-9]+ outcome=($abuse)( |$)" "$ALL_LOG" |
	    sed 's/^.*end client=/end client=/')
	[ "$(printf '%s\n' "$expected" | grep -c .)" -eq "$want" ] ||
	    fail "$filter: the log holds $(printf '%s\n' "$expected" | grep -c .) abuse records, want $want:
$expected"
	f2b_regex "$filter" -o msg
	got=$(printf '%s\n' "$output" | sed 's/^.*end client=/end client=/')
	[ "$got" = "$expected" ] || fail "$filter matched:
$output
--- want:
$expected"
	refute_line --regexp 'outcome=ok|Connection from|reason=proxy-bad'
	f2b_regex "$filter" -o ip
	got=$(printf '%s\n' "$output")
	expected=$(printf '%s\n' "$expected" | sed 's/^end client=\([^ ]*\) .*/\1/')
	[ "$got" = "$expected" ] || fail "$filter: addresses
$got
--- want:
$expected"
}

NORMAL_ABUSE='denied|timeout|too-long|refused reason=(max-per-source|rate|crash-penalty|timeout-penalty|proxy-untrusted)'
AGGRESSIVE_ABUSE="eof|refused reason=busy|$NORMAL_ABUSE"

# check_forms: both modes over ALL_LOG, and the served clients are there.
check_forms() {
	[ "$(grep -acE 'end client=\S+ .*outcome=ok ' "$ALL_LOG")" -ge 6 ]
	grep -aqE 'outcome=refused reason=proxy-bad-signature' "$ALL_LOG"
	check_filter srvexample "$WANT_NORMAL" "$NORMAL_ABUSE"
	refute_line --regexp 'outcome=(eof|refused reason=busy)'
	check_filter 'srvexample[mode=aggressive]' "$WANT_AGGRESSIVE" "$AGGRESSIVE_ABUSE"
}

@test "fail2ban-regex: the -d form: abuse records match, served clients never" {
	require_fail2ban
	F2B_CONF=$BATS_TEST_TMPDIR/f2b
	f2b_confdir "$F2B_CONF"
	FORM=stderr
	scenario
	check_forms
	echo "# -d form: $WANT_NORMAL matched (normal), $WANT_AGGRESSIVE (aggressive)" >&3
}

@test "fail2ban-regex: the syslog form (the daemon's datagrams), and as the journal backend reads it" {
	require_fail2ban
	require_root
	command -v unshare >/dev/null || skip "no unshare(1)"
	F2B_CONF=$BATS_TEST_TMPDIR/f2b
	f2b_confdir "$F2B_CONF"
	FORM=syslog
	scenario
	# A syslog daemon's file line: date, host, srvexample[pid]: message.
	grep -aqE '^[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} testhost srvexample\[[0-9]+\]: end client=' "$ALL_LOG"
	! grep -avE '^[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} testhost srvexample\[[0-9]+\]: ' "$ALL_LOG" ||
	    fail "a line not in the syslog form"
	check_forms
	# fail2ban's systemd backend writes "host srvexample[pid]: message"
	# with logtype=journal: the same matches.
	check_filter 'srvexample[logtype=journal]' "$WANT_NORMAL" "$NORMAL_ABUSE"
	echo "# syslog form: $WANT_NORMAL matched (normal), $WANT_AGGRESSIVE (aggressive)" >&3
}

@test "fail2ban-regex: prefixes of the -d form: <N> priorities, the program's name" {
	local -a ua
	require_fail2ban
	F2B_CONF=$BATS_TEST_TMPDIR/f2b
	f2b_confdir "$F2B_CONF"
	ALL_LOG=$BATS_TEST_TMPDIR/prefixed.log
	# The daemon with JOURNAL_STREAM naming its stderr, as systemd sets it
	# (the daemon may then write <N> priority prefixes, "ready:" too).
	log=$BATS_TEST_TMPDIR/daemon.log
	: >"$log"
	mapfile -t ua < <(user_args)
	PORT=$(free_port)
	JOURNAL_STREAM=$(stat -c '%d:%i' "$log") "$SRVEXAMPLE" -d -f /dev/null \
	    -l 127.0.0.1 -p "$PORT" "${ua[@]}" -o deny=127.0.0.2 -o resolve=no \
	    </dev/null >>"$log" 2>&1 3>&- &
	export DAEMON_PID=$! DAEMON_LOG=$log
	wait_until "grep -Eaq '^(<[0-9]>)?ready: ' '$log' || ! pid_alive $DAEMON_PID" 10
	pid_alive "$DAEMON_PID" || fail "the daemon did not start: $(cat "$log")"
	_seen "$DAEMON_PID"
	client --timeout 5 --expect 'You said:hi\n' 'hi\n'
	client --timeout 5 --source 127.0.0.2 --expect '' 'x\n'
	wait_end 127.0.0.1 ok
	wait_end 127.0.0.2 denied
	stop_daemon
	if grep -q '^<[0-9]>' "$log"; then
		echo "# with JOURNAL_STREAM the daemon wrote <N> prefixes" >&3
	fi
	{
		cat "$log"
		# The forms themselves, whatever this build prints.
		echo '<6>end client=192.0.2.1 port=1 pid=2 outcome=denied in=0 out=0 duration=0.000'
		echo 'srvexample: end client=2001:db8::1 port=1 pid=2 outcome=too-long in=9 out=21 duration=0.001'
		echo '<6>end client=192.0.2.2 port=1 pid=2 outcome=ok in=3 out=12 duration=0.001'
		echo '<6>Connection from 192.0.2.3 [192.0.2.3] 1'
	} >"$ALL_LOG"
	check_filter srvexample 3 'denied|too-long'
	[ "$output" = "$(printf '127.0.0.2\n192.0.2.1\n2001:db8::1')" ]
}

@test "fail2ban-client: the shipped jails load, disabled until a .local enables them" {
	require_fail2ban
	F2B_CONF=$BATS_TEST_TMPDIR/f2b
	f2b_confdir "$F2B_CONF"
	log=$BATS_TEST_TMPDIR/srvexample.log
	: >"$log"
	run --separate-stderr fail2ban-client -c "$F2B_CONF" -d
	assert_success
	refute_output --partial srvexample
	cat >"$F2B_CONF/jail.d/srvexample.local" <<EOF
[DEFAULT]
banaction = nftables-multiport
[srvexample]
enabled = true
[srvexample-file]
enabled = true
logpath = $log tail
mode = aggressive
[srvexample-syslog]
enabled = true
logpath = $log
EOF
	run --separate-stderr fail2ban-client -c "$F2B_CONF" -d
	assert_success
	refute_output --partial config-error
	assert_line "['add', 'srvexample', 'systemd']"
	assert_line "['set', 'srvexample', 'addjournalmatch', '_SYSTEMD_UNIT=srvexample.service']"
	assert_line "['set', 'srvexample-file', 'datepattern', '{NONE}']"
	assert_line "['set', 'srvexample-file', 'addlogpath', '$log', 'tail']"
	assert_line "['set', 'srvexample-syslog', 'addlogpath', '$log', 'head']"
	# mode = aggressive reaches the filter of that jail only.
	assert_line --partial "'srvexample-file', 'addfailregex', '^client=<ADDR> port=\\\\d+ pid=\\\\d+ outcome=(?:denied|timeout|too-long|eof|"
	assert_line --partial "'srvexample-syslog', 'addfailregex', '^client=<ADDR> port=\\\\d+ pid=\\\\d+ outcome=(?:denied|timeout|too-long|refused "
}

# -- a real fail2ban server ----------------------------------------------------

# ns PROGRAM ARGS...: run it in the test's network (and mount) namespace.
ns() {
	nsenter -t "$NS_PID" -n -m -r -w -- "$@"
}

# f2b CLIENT-ARGS...: fail2ban-client on the test's server.
f2b() {
	fail2ban-client -c "$F2B_CONF" -s "$F2B_RUN/fail2ban.sock" "$@"
}

# banned ADDR: the jail srvexample-file has ADDR in its banned list.
banned() {
	f2b status srvexample-file 2>/dev/null |
	    grep -Eq "Banned IP list:.*(^|[[:space:]])${1//./\\.}([[:space:]]|$)"
}

@test "fail2ban server: a source srvexample keeps denying is banned (nftables); others are served" {
	require_fail2ban
	require_root
	command -v fail2ban-server >/dev/null || skip "no fail2ban-server"
	command -v nft >/dev/null || skip "nftables is not installed (scripts/install-deps installs it)"
	command -v unshare >/dev/null && command -v nsenter >/dev/null ||
	    skip "no unshare(1)/nsenter(1)"
	# The namespace: held by a process of its own, loopback up.
	unshare --net --mount -- sleep 600 </dev/null 3>&- &
	NS_PID=$!
	track_pid "$NS_PID"
	wait_until '[ "$(readlink /proc/$NS_PID/ns/net)" != "$(readlink /proc/self/ns/net)" ]' 5
	ns ip link set lo up
	ns nft list ruleset >/dev/null || skip "nftables does not work in a network namespace here"
	# Clients, free_port and the daemon all run in it.
	cat >"$BATS_TEST_TMPDIR/python-ns" <<EOF
#!/bin/sh
exec nsenter -t $NS_PID -n -m -r -w -- $PYTHON "\$@"
EOF
	chmod +x "$BATS_TEST_TMPDIR/python-ns"
	PYTHON=$BATS_TEST_TMPDIR/python-ns
	# shellcheck disable=SC2034 # read by start_daemon
	DAEMON_PREFIX=(nsenter -t "$NS_PID" -n -m -r -w --)
	start_daemon -o deny=127.0.0.7 -o resolve=no
	assert_serves

	# fail2ban with a private configuration, socket, pidfile and database:
	# the shipped jail srvexample-file on the daemon's -d log, enabled by
	# a .local as a user would, banning with nftables.
	F2B_CONF=$BATS_TEST_TMPDIR/f2b
	F2B_RUN=$BATS_TEST_TMPDIR/f2b-run
	f2b_confdir "$F2B_CONF"
	mkdir -p "$F2B_RUN"
	cat >"$F2B_CONF/fail2ban.local" <<EOF
[DEFAULT]
logtarget = $F2B_RUN/fail2ban.log
socket = $F2B_RUN/fail2ban.sock
pidfile = $F2B_RUN/fail2ban.pid
dbfile = :memory:
EOF
	cat >"$F2B_CONF/jail.d/srvexample.local" <<EOF
[DEFAULT]
ignoreself = false
ignoreip =
banaction = nftables-multiport

[srvexample-file]
enabled = true
logpath = $DAEMON_LOG tail
backend = polling
port = $PORT
maxretry = 2
EOF
	ns fail2ban-server -f -x -c "$F2B_CONF" -s "$F2B_RUN/fail2ban.sock" \
	    -p "$F2B_RUN/fail2ban.pid" start </dev/null >"$F2B_RUN/server.out" 2>&1 3>&- &
	F2B_PID=$!
	track_pid "$F2B_PID"
	if ! wait_until 'f2b status srvexample-file >/dev/null 2>&1 || ! pid_alive $F2B_PID' 30 ||
	    ! pid_alive "$F2B_PID"; then
		cat "$F2B_RUN/server.out" "$F2B_RUN/fail2ban.log" >&2
		fail "fail2ban-server did not start the jail"
	fi

	# 127.0.0.7 keeps coming back and keeps being denied (one record per
	# 5 s reaches the log): poll the jail until it is banned.
	end=$(($(_now_ms) + 40000))
	tries=0
	until banned 127.0.0.7; do
		[ "$(_now_ms)" -lt "$end" ] || {
			cat "$F2B_RUN/fail2ban.log" >&2
			fail "127.0.0.7 not banned after $tries denied connections"
		}
		client --timeout 2 --source 127.0.0.7 'x\n' >/dev/null 2>&1 || true
		tries=$((tries + 1))
		sleep 0.2	# the attacker's pace, not a synchronisation
	done
	f2b status srvexample-file | sed "s/^/# /" >&3
	ns nft list ruleset | grep -q '127\.0\.0\.7' || fail "no nftables element for 127.0.0.7"

	# Banned: its connection fails, and the daemon sees none (its denial
	# counter, which counts every denial logged or not, stays).
	before=$(daemon_stats | grep -Eo ' denied=[0-9]+')
	run --separate-stderr client --timeout 3 --source 127.0.0.7 'x\n'
	[ "$status" -ne 0 ] || fail "a banned source still connects: $stderr"
	refute_stderr '^client: connected'
	assert_serves
	after=$(daemon_stats | grep -Eo ' denied=[0-9]+')
	[ "$before" = "$after" ] || fail "the daemon saw the banned source: $before -> $after"
	# Another source is still served.
	assert_serves --source 127.0.0.8
	echo "# banned after $tries denied connections; then refused:" \
	    "$(printf '%s\n' "$stderr" | tail -n 1)" >&3
	f2b stop >/dev/null
	wait_until '! pid_alive $F2B_PID' 15
}
