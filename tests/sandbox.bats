#!/usr/bin/env bats
# shellcheck shell=bash
# The sandbox: one seccomp filter installed by the parent and inherited by
# every child, plus the limits each child sets before it reads from its
# client.  The probe (tests/sandbox-probe.c) links the daemon's own
# src/sandbox.c and tries one system call per case as the parent or a child
# would; the last tests look at a running daemon through /proc.

load test_helper

PROBE=${top_builddir:-$TESTS_DIR/..}/tests/sandbox-probe

# config_h: the build's config.h, if it can be found.
config_h() {
	local f
	for f in "${top_builddir:-}/config.h" "$TESTS_DIR/../config.h"; do
		[ -f "$f" ] && printf '%s\n' "$f" && return 0
	done
	return 1
}

# require_sandbox: skip unless this build has the seccomp sandbox.
require_sandbox() {
	local h
	h=$(config_h) || skip "no config.h found (set top_builddir)"
	grep -q '^#define HAVE_SECCOMP 1' "$h" || skip "built without seccomp"
	! grep -q '^#define SANITIZERS 1' "$h" || skip "sanitizer build: sandbox off"
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
	# pidfds are in the filter for the parent; a child can open none.
	probe pidfd-parent 'failed: EMFILE'
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
	probe open-read 'failed: EMFILE'
	probe socket-inet 'failed: EMFILE'
	probe fork 'failed: EAGAIN'
}

@test "sandbox: the parent signals children through pidfds and cannot kill(2) or exec" {
	require_sandbox
	probe parent-signal-child ok
	probe parent-kill 'killed by SIGSYS'
	probe parent-execve 'killed by SIGSYS'
}

@test "sandbox: parent and child run under one inherited filter; the child's limits are set" {
	local child
	require_sandbox
	start_daemon
	wait_for_log '^ready: .*, sandboxed$' 0
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT")
	for p in "$DAEMON_PID" "$child"; do
		[ "$(proc_status "$p" Seccomp)" = 2 ] ||
		    fail "pid $p Seccomp: $(proc_status "$p" Seccomp)"
		[ "$(proc_status "$p" NoNewPrivs)" = 1 ]
		# One filter: the child attached none of its own.
		[ "$(proc_status "$p" Seccomp_filters)" = 1 ] ||
		    fail "pid $p Seccomp_filters: $(proc_status "$p" Seccomp_filters)"
	done
	grep -Eq '^Max processes +0 +0 ' "/proc/$child/limits" ||
	    fail "child RLIMIT_NPROC: $(grep 'Max processes' "/proc/$child/limits")"
	grep -Eq '^Max open files +1 +1 ' "/proc/$child/limits" ||
	    fail "child RLIMIT_NOFILE: $(grep 'Max open files' "/proc/$child/limits")"
	release_client
	assert_serves
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
