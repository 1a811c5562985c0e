#!/usr/bin/env bats
# shellcheck shell=bash
# status, output, lines and stderr are set by bats' run; conditions passed to
# wait_until are single-quoted on purpose (evaluated later); each @test runs
# in its own subshell, so its assignments are meant to stay there.
# shellcheck disable=SC2154,SC2016,SC2030,SC2031
# Names on a real system (SPEC "Names"): resolve yes against a real DNS
# server.  Each test runs the daemon, its clients and dnsmasq in a network
# and mount namespace of its own (unshare(1)), where /etc/hosts,
# /etc/resolv.conf and /etc/nsswitch.conf are the test's (bind mounts), so
# that neither the machine's files nor its name servers decide anything.
# dnsmasq (Debian's dnsmasq-base) answers on 127.0.0.53 for the test's own
# records:
#   127.0.0.10  <-> good.example         (PTR and A: confirmed)
#   127.0.0.11  --> trusted.example, whose A is 192.0.2.1 (does not map back)
#   127.0.0.12  no PTR at all
# The default hosts line is Debian's with systemd-container installed,
# `files myhostname mymachines dns`: both modules load libcap, whose
# constructor calls prctl(), which no sandboxed child may.

load test_helper

GOOD=127.0.0.10
LIAR=127.0.0.11
NONAME=127.0.0.12

setup() {
	common_setup
	require_root
	command -v unshare >/dev/null && command -v nsenter >/dev/null ||
	    skip "unshare and nsenter (util-linux) are needed"
	command -v dnsmasq >/dev/null ||
	    skip "dnsmasq is needed (Debian: dnsmasq-base)"
	make_world_tmpdir
	NS_DIR=$WORLD_TMPDIR
	printf '127.0.0.1 localhost\n' >"$NS_DIR/hosts"
	printf 'nameserver 127.0.0.53\n' >"$NS_DIR/resolv.conf"
	hosts_line 'files myhostname mymachines dns'
	start_namespace
	IN_NS=(nsenter -t "$NS_PID" -n -m -r -w --)
	# shellcheck disable=SC2034 # start_daemon's (test_helper.bash)
	DAEMON_PREFIX=("${IN_NS[@]}")
}

teardown() {
	local p
	common_teardown
	# Not tracked with track_pid: stop_daemon would take them for
	# children of the daemon.
	for p in "${NS_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	for p in "${NS_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
}

# ns_track PID: kill PID (a helper in the namespace) in teardown.
ns_track() {
	NS_PIDS+=("$1")
}

# restart_daemon ARGS...: stop the daemon (it exits 0), start it again.
restart_daemon() {
	signal_daemon TERM
	wait_daemon_exit 15
	[ "$DAEMON_STATUS" -eq 0 ] || fail "the daemon exited with $DAEMON_STATUS"
	start_daemon "$@"
}

# -- helpers local to this file -----------------------------------------------

# hosts_line LINE: the namespace's nsswitch.conf says `hosts: LINE` (the
# file is rewritten in place: the bind mount keeps its inode).
hosts_line() {
	printf 'passwd: files\ngroup: files\nhosts: %s\n' "$1" >"$NS_DIR/nsswitch.conf"
}

# start_namespace: a process holding a network and mount namespace where lo
# is up and the three files are the test's; sets NS_PID.
start_namespace() {
	# A file may be missing (debootstrap minbase has no /etc/hosts): then,
	# in this namespace only, /etc is a copy in which it is created.
	unshare --mount --net --propagation private -- sh -c '
		ip link set lo up || exit 1
		for f in hosts resolv.conf nsswitch.conf; do
			[ -e "/etc/$f" ] && continue
			mkdir -p "$1/etc" && cp -a /etc/. "$1/etc/" &&
			    mount --bind "$1/etc" /etc || exit 1
			break
		done
		for f in hosts resolv.conf nsswitch.conf; do
			[ -e "/etc/$f" ] || { rm -f "/etc/$f" && : >"/etc/$f"; } ||
			    exit 1
			mount --bind "$1/$f" "/etc/$f" || exit 1
		done
		: >"$1/ns.ready" && exec sleep 3600' sh "$NS_DIR" 3>&- &
	NS_PID=$!
	ns_track "$NS_PID"
	wait_until '[ -e "$NS_DIR/ns.ready" ]' 10 ||
	    fail "the test namespace did not come up"
}

# in_ns COMMAND...: run COMMAND in the test's namespaces.  (In the
# background, "${IN_NS[@]}" COMMAND, so that $! is COMMAND: nsenter execs.)
in_ns() {
	"${IN_NS[@]}" "$@"
}

# start_dns [NAME]: dnsmasq on 127.0.0.53 with the test's records, GOOD
# named NAME (default good.example); waits until it answers.
start_dns() {
	local name=${1:-good.example}
	: >"$NS_DIR/dnsmasq.log"
	"${IN_NS[@]}" dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll \
	    --listen-address=127.0.0.53 --bind-interfaces --port=53 \
	    --user=root --pid-file= --log-queries --log-facility="$NS_DIR/dnsmasq.log" \
	    --host-record="$name,$GOOD" \
	    --ptr-record="11.0.0.127.in-addr.arpa,trusted.example" \
	    --host-record=trusted.example,192.0.2.1 3>&- &
	DNS_PID=$!
	ns_track "$DNS_PID"
	wait_until 'in_ns "$PYTHON" -c "import socket; socket.gethostbyname(\"'"$name"'\")" 2>/dev/null' 10 ||
	    fail "dnsmasq does not answer: $(cat "$NS_DIR/dnsmasq.log")"
}

# stop_dns: end dnsmasq (to start it again with other records).
stop_dns() {
	kill -KILL "$DNS_PID"
	wait "$DNS_PID" 2>/dev/null || true
}

# start_black_hole ADDR...: a name server on each ADDR:53 (UDP and TCP)
# that reads every query and never answers.
start_black_hole() {
	"${IN_NS[@]}" "$PYTHON" -c '
import socket, sys, time
socks = []
for a in sys.argv[2:]:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((a, 53))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind((a, 53))
    t.listen(64)
    socks += [u, t]
open(sys.argv[1], "w").close()
while True:
    time.sleep(3600)' "$NS_DIR/hole.ready" "$@" 3>&- &
	ns_track "$!"
	wait_until '[ -e "$NS_DIR/hole.ready" ]' 10 || fail "no black hole"
}

# ns_client SOURCE [CLIENT-ARGS...]: a client from SOURCE in the namespace
# sends hello and is answered; waits for its child's end line.  Sets CPORT.
ns_client() {
	local src=$1
	shift
	run --separate-stderr in_ns "$PYTHON" "$CLIENT" --port "$PORT" \
	    --source "$src" --timeout 10 "$@" 'hello\n'
	assert_success
	assert_output 'You said:hello'
	CPORT=$(report_value port)
	[ -n "$CPORT" ] || fail "no client port in: $stderr"
	wait_for_log "^end client=${src//./\\.} port=$CPORT pid=[0-9]+ outcome=ok " 10
}

# assert_named NAME IP: the last client (CPORT) was logged as NAME.
assert_named() {
	wait_for_log "^Connection from ${1//./\\.} \\[${2//./\\.}\\] $CPORT\$" 5
}

# assert_named_any NAME IP: some client from IP was logged as NAME.
assert_named_any() {
	wait_for_log "^Connection from ${1//./\\.} \\[${2//./\\.}\\] [0-9]+\$" 5
}

# assert_no_crash: no child and no resolver was killed by a signal.
assert_no_crash() {
	if grep -Ea 'killed by signal' "$DAEMON_LOG"; then
		fail "a process was killed"
	fi
}

# resolver_worker: the pid of the resolver's worker (the daemon's
# grandchild titled "resolver worker").
resolver_worker() {
	local c w
	for c in $(children_of "$DAEMON_PID"); do
		for w in $(children_of "$c"); do
			tr '\0' ' ' <"/proc/$w/cmdline" 2>/dev/null |
			    grep -q '^srvexample: resolver worker' && echo "$w"
		done
	done
}

# resolver_proc: the pid of the resolver (the daemon's child titled so).
resolver_proc() {
	local c
	for c in $(children_of "$DAEMON_PID"); do
		tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null |
		    grep -Eq '^srvexample: resolver( |$)' && echo "$c"
	done
}

# -- confirmed, unconfirmed, none ------------------------------------------------

@test "names: an unknown client is named by its confirmed PTR name, whatever the hosts line" {
	local line
	start_dns
	for line in 'files dns' 'files mymachines dns' 'files myhostname dns' \
	    'files myhostname mymachines dns' \
	    'files resolve [!UNAVAIL=return] dns' \
	    'files mdns4_minimal [NOTFOUND=return] dns'; do
		hosts_line "$line"
		if [ -n "$DAEMON_PID" ]; then
			restart_daemon -v
		else
			start_daemon -v
		fi
		ns_client "$GOOD"
		assert_named good.example "$GOOD"
		assert_no_crash
	done
	ns_client "$NONAME"
	assert_named "$NONAME" "$NONAME"
	assert_no_crash
}

@test "names: a PTR name that does not map back is not used: the IP, and with -v a line says so" {
	start_dns
	start_daemon -v
	ns_client "$LIAR"
	assert_named "$LIAR" "$LIAR"
	wait_for_log "^client ${LIAR//./\\.}: name trusted\\.example does not map back to it\$"
	[ "$(log_count 'Connection from trusted\.example')" -eq 0 ]
	# Without -v the address only, and no such line.
	restart_daemon
	ns_client "$LIAR"
	assert_named "$LIAR" "$LIAR"
	[ "$(log_count 'does not map back')" -eq 0 ]
}

@test "names: ::1 with no line in hosts is served and logged by its address" {
	start_dns
	LISTEN=::1 start_daemon -v
	run --separate-stderr in_ns "$PYTHON" "$CLIENT" --host ::1 --port "$PORT" \
	    --timeout 10 'hello\n'
	assert_success
	assert_output 'You said:hello'
	wait_for_log '^end client=::1 port=[0-9]+ pid=[0-9]+ outcome=ok ' 10
	wait_for_log '^Connection from ::1 \[::1\] [0-9]+$'
	assert_no_crash
}

# -- bounds --------------------------------------------------------------------------

@test "names: three black-hole name servers: the lookup gives up in 2 s, inside the client's timeout" {
	# Each server costs a second (RES_OPTIONS timeout:1 attempts:1): three
	# would take the whole timeout of 3 s, and the client would get
	# "Error: timeout" for a line it sent at once.
	printf 'nameserver 127.0.0.54\nnameserver 127.0.0.55\nnameserver 127.0.0.56\n' \
	    >"$NS_DIR/resolv.conf"
	start_black_hole 127.0.0.54 127.0.0.55 127.0.0.56
	start_daemon -o timeout=3
	run --separate-stderr in_ns "$PYTHON" "$CLIENT" --port "$PORT" \
	    --source "$GOOD" --timeout 10 --repeat 6 --parallel 6 \
	    --expect 'You said:hello\n' 'hello\n'
	assert_success
	assert_stderr '^client: repeat ok=6 failed=0$'
	wait_until '[ "$(log_count "^end client=${GOOD//./\\.} .* outcome=ok ")" -eq 6 ]' 10
	[ "$(log_count "^Connection from ${GOOD//./\\.} \\[${GOOD//./\\.}\\] ")" -eq 6 ]
	[ "$(log_count 'outcome=timeout')" -eq 0 ]
	assert_no_crash
}

# -- memory ----------------------------------------------------------------------------

@test "names: the resolver remembers a name, and forgets it on SIGHUP" {
	start_dns
	start_daemon -v
	ns_client "$GOOD"
	assert_named good.example "$GOOD"
	[ "$(log_count '^name of 127\.0\.0\.10 from the cache$')" -eq 0 ]
	# The zone changes: the remembered name is still used...
	stop_dns
	start_dns renamed.example
	ns_client "$GOOD"
	assert_named good.example "$GOOD"
	[ "$(log_count '^name of 127\.0\.0\.10 from the cache$')" -eq 1 ]
	# ...until SIGHUP.
	signal_daemon HUP
	wait_for_log '^configuration reloaded$'
	ns_client "$GOOD"
	assert_named renamed.example "$GOOD"
	[ "$(log_count '^name of 127\.0\.0\.10 from the cache$')" -eq 1 ]
}

# -- the resolver process --------------------------------------------------------------

@test "names: a killed resolver worker is restarted and logged; clients are served throughout" {
	local w r
	start_dns
	start_daemon -v
	ns_client "$GOOD"
	assert_named good.example "$GOOD"
	w=$(resolver_worker)
	[ -n "$w" ] || fail "no resolver worker"
	# Its own filter is on (Seccomp 2: filter mode), where the build has one.
	if ! sandbox_off >/dev/null; then
		grep -Eq '^Seccomp:[[:space:]]+2$' "/proc/$w/status" ||
		    fail "worker $w has no seccomp filter"
	fi
	kill -KILL "$w"
	wait_for_log "^resolver worker $w killed by signal SIGKILL, restarting it\$"
	wait_until '[ -n "$(resolver_worker)" ] && [ "$(resolver_worker)" != "'"$w"'" ]' 10
	# The new worker looks the name up again (the cache went with the old).
	ns_client "$GOOD"
	assert_named good.example "$GOOD"
	# The resolver itself: logged, and clients are named by address.
	r=$(resolver_proc)
	[ -n "$r" ] || fail "no resolver"
	kill -KILL "$r"
	wait_for_log "^resolver $r killed by signal SIGKILL: clients are logged by address\$"
	ns_client "$GOOD"
	assert_named "$GOOD" "$GOOD"
	[ -z "$(zombies_of "$DAEMON_PID")" ] || fail "the resolver was not reaped"
	grep -Ea 'child [0-9]+ .*killed by signal' "$DAEMON_LOG" && fail "a child was killed"
	true
}

@test "names: a child never loads an NSS module, the resolver worker does" {
	local c n=0
	start_dns
	start_daemon -v
	# A child that has logged its client's name and waits for its line.
	"${IN_NS[@]}" "$PYTHON" "$CLIENT" --port "$PORT" --source "$GOOD" --timeout 30 \
	    --ready-file "$NS_DIR/held" --wait-file "$NS_DIR/go" 'hello\n' \
	    >/dev/null 2>&1 3>&- &
	ns_track "$!"
	assert_named_any good.example "$GOOD"
	for c in $(children_of "$DAEMON_PID"); do
		tr '\0' ' ' <"/proc/$c/cmdline" | grep -q '^srvexample: client ' ||
		    continue
		n=$((n + 1))
		if grep -Eq 'libnss_(dns|mymachines|myhostname)' "/proc/$c/maps"; then
			fail "child $c maps an NSS module: $(grep libnss_ "/proc/$c/maps")"
		fi
	done
	[ "$n" -eq 1 ] || fail "$n children serving, expected the held one"
	grep -Eq 'libnss_(dns|myhostname)' "/proc/$(resolver_worker)/maps" ||
	    fail "the resolver worker loaded no NSS module"
	: >"$NS_DIR/go"
	wait_for_log "^end client=${GOOD//./\\.} .* outcome=ok " 10
}
