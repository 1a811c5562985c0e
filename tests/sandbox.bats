#!/usr/bin/env bats
# shellcheck shell=bash
# The sandbox: one seccomp filter installed by the parent and inherited by
# every child, plus the limits and the filter of its own each child sets
# before it reads from its client.  The probe (tests/sandbox-probe.c) links the daemon's own
# src/sandbox.c and tries one system call per case as the parent or a child
# would; the last tests look at a running daemon through /proc.

load test_helper

PROBE=${top_builddir:-$TESTS_DIR/..}/tests/sandbox-probe

# require_sandbox: skip unless this build has the seccomp sandbox.
require_sandbox() {
	local why
	why=$(sandbox_off) && skip "$why"
	[ -x "$PROBE" ] || fail "no probe at $PROBE (make check builds it)"
}

# probe CASE EXPECTED: the probe reports "CASE: EXPECTED".
probe() {
	run "$PROBE" "$1"
	assert_success
	assert_output "$1: $2"
}

@test "sandbox: a child may serve: poll, write, memory" {
	require_sandbox
	probe serve ok
}

@test "sandbox: a child that runs a program, traces or changes identity is killed" {
	require_sandbox
	probe execve 'killed by SIGSYS'
	probe ptrace 'killed by SIGSYS'
	probe setuid 'killed by SIGSYS'
	probe prctl 'killed by SIGSYS'
	probe unshare-user 'killed by SIGSYS'
}

@test "sandbox: a child cannot signal or limit its parent" {
	require_sandbox
	probe kill-parent 'killed by SIGSYS'
	probe prlimit-parent 'killed by SIGSYS'
	# pidfds are in the filter for the parent; a child's refuses them.
	probe pidfd-parent 'failed: EPERM'
}

@test "sandbox: writable executable memory kills, in parent and child alike" {
	require_sandbox
	probe mmap-wx 'killed by SIGSYS'
	probe mprotect-x 'killed by SIGSYS'
}

@test "sandbox: a child opens no file or socket and forks nothing" {
	require_sandbox
	probe open-write 'killed by SIGSYS'
	probe socket-packet 'killed by SIGSYS'
	probe open-read 'failed: EPERM'
	probe socket-inet 'failed: EPERM'
	probe fork 'killed by SIGSYS'
}

@test "sandbox: the parent signals children through pidfds and cannot kill(2) or exec" {
	require_sandbox
	probe parent-signal-child ok
	probe parent-kill 'killed by SIGSYS'
	probe parent-execve 'killed by SIGSYS'
}

@test "sandbox: the child stacks its own filter on the inherited one; its limits are set" {
	local child
	require_sandbox
	start_daemon
	wait_for_log '^ready: .*, sandboxed$' 0
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT" 30)
	for p in "$DAEMON_PID" "$child"; do
		[ "$(proc_status "$p" Seccomp)" = 2 ] ||
		    fail "pid $p Seccomp: $(proc_status "$p" Seccomp)"
		[ "$(proc_status "$p" NoNewPrivs)" = 1 ]
	done
	# The parent has one filter; the child stacked its own on it.
	[ "$(proc_status "$DAEMON_PID" Seccomp_filters)" = 1 ] ||
	    fail "parent Seccomp_filters: $(proc_status "$DAEMON_PID" Seccomp_filters)"
	[ "$(proc_status "$child" Seccomp_filters)" = 2 ] ||
	    fail "child Seccomp_filters: $(proc_status "$child" Seccomp_filters)"
	grep -Eq '^Max processes +0 +0 ' "/proc/$child/limits" ||
	    fail "child RLIMIT_NPROC: $(grep 'Max processes' "/proc/$child/limits")"
	grep -Eq '^Max open files +1 +1 ' "/proc/$child/limits" ||
	    fail "child RLIMIT_NOFILE: $(grep 'Max open files' "/proc/$child/limits")"
	release_client
	assert_serves
}

@test "sandbox: behind a balancer, with a name to look up, the child has its own filter before it reads the header" {
	local child
	require_sandbox
	start_daemon -o resolve=yes -o proxy-protocol=yes -o proxy-from=127.0.0.1
	# The balancer connects and sends nothing yet: the child waits for the
	# PROXY header, which only it reads, and whose client it must name.
	hold_client
	child=$(child_for_port "$HOLD_PORT" 30)
	[ "$(proc_status "$child" Seccomp_filters)" = 2 ] ||
	    fail "child Seccomp_filters before the header: $(proc_status "$child" Seccomp_filters)"
	release_client || true
	# And a whole exchange through it still names its client.
	run client --expect 'You said:hello\n' \
	    "PROXY TCP4 127.0.0.1 127.0.0.1 5555 $PORT\r\nhello\n"
	assert_success
	wait_for_log '^Connection from [^ ]+ \[127\.0\.0\.1\] 5555$'
	wait_for_log '^end client=127\.0\.0\.1 port=5555 .* outcome=ok '
	daemon_stats
	[ "$(stats_value crashed)" -eq 0 ]
}

@test "sandbox: a whole exchange with name lookup works under the filter" {
	require_sandbox
	start_daemon -o resolve=yes
	run client --expect 'You said:hello\n' 'hello\n'
	assert_success
	wait_for_log '^end client=127\.0\.0\.1 .* outcome=ok '
	daemon_stats
	[ "$(stats_value crashed)" -eq 0 ]
}

# -- a live child taken over by its client ----------------------------------
# Each attack below is made from inside a child serving a held client, as
# code run there after a memory bug would: gdb attaches to the child and
# calls into it.  Every one worked before the child had a filter of its own.

# require_gdb: skip unless root (to attach to the dropped child) with gdb.
require_gdb() {
	require_sandbox
	require_root
	command -v gdb >/dev/null || skip "gdb not installed (scripts/install-deps)"
}

# in_child PID CALL...: make PID run each CALL ("(int)close(0)") under gdb;
# prints gdb's output ("$1 = 0" per call that returned).
in_child() {
	local pid=$1 c args=()
	shift
	for c in "$@"; do args+=(-ex "call $c"); done
	timeout 60 gdb -q -nx -batch -p "$pid" "${args[@]}" 2>&1 || true
}

# client_fd PID: the child's descriptor for the held client.
client_fd() {
	local inode fd
	inode=$(socket_inode "$PORT" "$HOLD_PORT")
	for fd in /proc/"$1"/fd/*; do
		if [ "$(readlink "$fd")" = "socket:[$inode]" ]; then
			printf '%s\n' "${fd##*/}"
			return 0
		fi
	done
	return 1
}

@test "sandbox: a live child cannot make the kernel signal its parent (F_SETOWN, F_SETSIG, O_ASYNC)" {
	local child fd
	require_gdb
	# The attacker's own source is not penalised for its child's death here.
	start_daemon -o crash-penalty=0
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT" 30)
	fd=$(client_fd "$child")
	# F_SETOWN 8, F_SETSIG 10, F_SETFL 4, O_ASYNC 020000: then a byte from
	# the client would send SIGKILL to the parent.
	run in_child "$child" "(int)fcntl($fd, 8, $DAEMON_PID)" \
	    "(int)fcntl($fd, 10, 9)" "(int)fcntl($fd, 4, 020000)"
	refute_line --regexp '^\$1 = '
	assert_output --partial SIGSYS
	wait_until "! pid_alive $child" 10 || fail "child $child still alive"
	release_client || true
	pid_alive "$DAEMON_PID" || fail "the parent died"
	assert_serves
}

@test "sandbox: a live child with fd 0 closed opens no pidfd, socket or file" {
	local child
	require_gdb
	start_daemon
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT" 30)
	run in_child "$child" '(int)close(0)' \
	    "(int)syscall(434, $DAEMON_PID, 0)" '(int)socket(2, 1, 0)' \
	    '(int)open("/proc/self/net/tcp", 0)' \
	    '(int)openat(-100, "/etc/hosts", 0)' '*(int *)__errno_location()'
	assert_line '$1 = 0'
	assert_line '$2 = -1'
	assert_line '$3 = -1'
	assert_line '$4 = -1'
	assert_line '$5 = -1'
	assert_line '$6 = 1'		# EPERM
	# It still serves its own client.
	release_client
	[ "$HOLD_STATUS" -eq 0 ] || fail "held client: $HOLD_STATUS"
	pid_alive "$DAEMON_PID" || fail "the parent died"
}

@test "sandbox: a live child cannot signal, send elsewhere, unlink or cancel its watchdog" {
	local child fd
	require_gdb
	start_daemon -o crash-penalty=0
	for c in "(int)kill($DAEMON_PID, 0)" \
	    "(int)syscall(44, \$fd, \"x\", 1, 0, 1, 110)" \
	    '(int)unlinkat(-100, "/nonexistent", 0)' '(int)alarm(0)'; do
		# sendto(2) through syscall(2): gdb cannot build glibc's
		# transparent union for the address (44 is SYS_sendto).
		hold_client 'x\n'
		child=$(child_for_port "$HOLD_PORT" 30)
		fd=$(client_fd "$child")
		run in_child "$child" "${c//\$fd/$fd}"
		assert_output --partial SIGSYS
		wait_until "! pid_alive $child" 10 ||
		    fail "$c: child $child still alive"
		release_client || true
	done
	pid_alive "$DAEMON_PID" || fail "the parent died"
	assert_serves
}

@test "sandbox: a child that never ends (stopped) is killed by the parent past its deadline" {
	local child
	require_sandbox
	start_daemon -o timeout=5
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT" 30)
	# A stopped child gets no SIGALRM: only the parent can end it.
	kill -STOP "$child"
	wait_for_log "^child $child \(client 127\.0\.0\.1\) outlived its deadline, killing it$" 30
	wait_until "! pid_alive $child" 10
	release_client || true
	pid_alive "$DAEMON_PID"
	assert_serves
}

@test "sandbox: fd 0 closed first, a child opens no pidfd, file or socket (probe)" {
	require_sandbox
	probe pidfd-parent-fd0 'failed: EPERM'
	probe open-read-fd0 'failed: EPERM'
	probe openat-read-fd0 'failed: EPERM'
	probe socket-inet-fd0 'failed: EPERM'
	probe socket-unix-fd0 'failed: EPERM'
	probe connect-fd0 'failed: EPERM'
}

@test "sandbox: a child's fcntl cannot arm a signal; it may read and set flags (probe)" {
	require_sandbox
	probe fcntl-getfl ok
	probe fcntl-setown 'killed by SIGSYS'
	probe fcntl-setsig 'killed by SIGSYS'
	probe fcntl-async 'killed by SIGSYS'
	probe fcntl-dupfd 'killed by SIGSYS'
	probe parent-fcntl-setown 'killed by SIGSYS'
}

@test "sandbox: a child sends to no other address, cancels no watchdog, unlinks nothing (probe)" {
	require_sandbox
	probe sendto-addr 'killed by SIGSYS'
	probe sendmsg 'killed by SIGSYS'
	# With a resolver: on its socket only (an address given is ignored).
	probe sendmsg-resolver ok
	probe sendmsg-beside 'killed by SIGSYS'
	probe alarm 'killed by SIGSYS'
	probe unlink 'killed by SIGSYS'
	probe dup 'killed by SIGSYS'
}

@test "sandbox: the parent unlinks in its pidfile's directory only, an absolute path included (probe)" {
	local dir
	require_sandbox
	make_piddir
	make_world_tmpdir	# for a normal user too: not the pidfile's
	dir=$WORLD_TMPDIR/other
	mkdir "$dir"
	[ "$(id -u)" != 0 ] || chown nobody:nogroup "$dir"
	: >"$dir/victim"
	: >"$PIDDIR/x.pid"
	[ "$(id -u)" != 0 ] || chown nobody:nogroup "$dir/victim" "$PIDDIR/x.pid"
	export PROBE_PIDDIR=$PIDDIR PROBE_VICTIM=$dir/victim
	run "$PROBE" parent-unlink-outside
	assert_success
	[ -e "$dir/victim" ] || fail "unlinked outside the pidfile's directory"
	if [ "$output" = 'parent-unlink-outside: killed by SIGSYS' ]; then
		# No Landlock here: the filter allows no unlink at all.
		probe parent-unlink-pidfile 'killed by SIGSYS'
		return 0
	fi
	assert_output 'parent-unlink-outside: failed: EACCES'
	probe parent-unlink-pidfile ok
	[ ! -e "$PIDDIR/x.pid" ]
}

# -- the privilege boundary at startup ----------------------------------------

@test "pidfile: a symbolic link the dropped user planted is not followed (root writes nothing through it)" {
	local secret
	require_root
	make_piddir
	secret=$BATS_TEST_TMPDIR/secret
	printf 'root only\n' >"$secret"
	chmod 600 "$secret"
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
	    ln -s "$secret" "$PIDDIR/x.pid"
	PORT=$(free_port)
	: >"$BATS_TEST_TMPDIR/empty.conf"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -f "$BATS_TEST_TMPDIR/empty.conf" \
	    -l 127.0.0.1 -p "$PORT" -o pidfile="$PIDDIR/x.pid" -u nobody
	[ "$status" -eq 1 ] || fail "started through the link: exit $status"
	assert_stderr "pidfile $PIDDIR/x.pid"
	[ "$(cat "$secret")" = 'root only' ] || fail "written through the link: $(cat "$secret")"
	[ -L "$PIDDIR/x.pid" ]
}

@test "pidfile: a FIFO or a directory in its place is refused without blocking" {
	require_root
	make_piddir
	PORT=$(free_port)
	: >"$BATS_TEST_TMPDIR/empty.conf"
	setpriv --reuid=nobody --regid=nogroup --clear-groups mkfifo "$PIDDIR/x.pid"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -f "$BATS_TEST_TMPDIR/empty.conf" \
	    -l 127.0.0.1 -p "$PORT" -o pidfile="$PIDDIR/x.pid" -u nobody
	[ "$status" -eq 1 ] || fail "FIFO: exit $status"
	assert_stderr "pidfile $PIDDIR/x.pid: not a regular file"
}

# ignored PID SIGNUM: is SIGNUM in PID's set of ignored signals?
ignored() {
	local mask
	mask=$(proc_status "$1" SigIgn)
	[ $(((16#$mask >> ($2 - 1)) & 1)) -eq 1 ]
}

@test "signals: started with SIGCHLD, SIGTERM and the rest ignored, it resets them: counts drop, watchdog and SIGTERM work" {
	local child s
	# shellcheck disable=SC2034 # read by start_daemon
	DAEMON_PREFIX=(env --ignore-signal=CHLD --ignore-signal=TERM
	    --ignore-signal=ALRM --ignore-signal=HUP --ignore-signal=USR1
	    --ignore-signal=INT)
	start_daemon -o max-per-source=2
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT" 30)
	# SIGCHLD 17, SIGALRM 14 (the watchdog), SIGTERM 15 (shutdown).
	for s in 14 15 17; do
		! ignored "$DAEMON_PID" "$s" || fail "the parent ignores signal $s"
		! ignored "$child" "$s" || fail "the child ignores signal $s"
	done
	release_client
	# A third client of one source is served only if the first two were
	# counted out.
	for _ in 1 2 3 4; do
		run client --expect 'You said:x\n' 'x\n'
		assert_success
	done
	daemon_stats
	[ "$(stats_value crashed)" -eq 0 ]
	stop_daemon 10
	[ "$DAEMON_STATUS" -eq 0 ] || fail "SIGTERM: status $DAEMON_STATUS"
}

@test "rules: an IPv4-mapped network matches the IPv4 clients it names; one shorter than /96 is refused" {
	local conf=$BATS_TEST_TMPDIR/mapped.conf
	printf 'deny ::ffff:127.0.0.0/104\n' >"$conf"
	run "$SRVEXAMPLE" -n -f "$conf" -C addr=127.0.0.1
	assert_success
	assert_line 'verdict deny'
	assert_line 'rule deny 127.0.0.0/8'
	CONF=$conf start_daemon
	run client --timeout 5 'x\n'
	refute_output --partial 'You said'
	printf 'allow ::ffff:10.0.0.0/80\n' >"$conf"
	run --separate-stderr "$SRVEXAMPLE" -n -f "$conf"
	assert_failure
	assert_stderr_line "srvexample: $conf:1: an IPv4-mapped network needs a prefix length of 96 or more, not \"::ffff:10.0.0.0/80\""
}
