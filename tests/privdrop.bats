#!/usr/bin/env bats
# privdrop.bats: started as root, the parent and every child run as the
# configured user for good (SPEC.md "Process model"), checked in
# /proc/PID/status; privileged ports, chroot, the non-root paths, and what a
# child keeps open.

# status, output, lines and stderr come from bats' run; DAEMON_PREFIX, CONF
# and the like are read by test_helper.bash.
# shellcheck disable=SC2154,SC2034
load test_helper

NOBODY_UID=$(id -u nobody)
NOGROUP_GID=$(getent group nogroup | cut -d: -f3)
NOCAPS=0000000000000000

# ids PID KEY: the four ids of Uid: or Gid: in /proc/PID/status, one space apart.
ids() {
	proc_status "$1" "$2" | tr -s '\t ' '  ' | sed 's/ *$//'
}

# assert_dropped PID UID GID: real, effective, saved and fs ids are UID/GID;
# no supplementary group but GID; no capability; no_new_privs set.
assert_dropped() {
	local pid=$1 uid=$2 gid=$3 groups cap
	[ "$(ids "$pid" Uid)" = "$uid $uid $uid $uid" ] ||
	    fail "pid $pid Uid: $(ids "$pid" Uid), expected $uid x4"
	[ "$(ids "$pid" Gid)" = "$gid $gid $gid $gid" ] ||
	    fail "pid $pid Gid: $(ids "$pid" Gid), expected $gid x4"
	groups=$(proc_status "$pid" Groups | tr -s '\t ' ' ' | sed 's/^ *//; s/ *$//')
	[ -z "$groups" ] || [ "$groups" = "$gid" ] ||
	    fail "pid $pid supplementary groups: '$groups'"
	for cap in CapEff CapPrm CapAmb; do
		[ "$(proc_status "$pid" "$cap")" = "$NOCAPS" ] ||
		    fail "pid $pid $cap: $(proc_status "$pid" "$cap")"
	done
	[ "$(proc_status "$pid" NoNewPrivs)" = 1 ] ||
	    fail "pid $pid NoNewPrivs: $(proc_status "$pid" NoNewPrivs)"
}

# free_privileged_port: a port below 1024 free on 127.0.0.1 (root only).
free_privileged_port() {
	"$PYTHON" -c '
import socket
for p in range(1023, 600, -1):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p)
    break'
}

# as_nobody: DAEMON_PREFIX that runs the daemon as nobody:nogroup, no caps.
as_nobody() {
	DAEMON_PREFIX=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all)
	CONF=/dev/null
}

# fd_report PID: "fd -> target" for every descriptor of PID.
fd_report() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		printf '%s -> %s\n' "${fd##*/}" "$(readlink "$fd")"
	done
}

# make_jail: sets JAIL, a fresh 0755 root-owned directory every component of
# whose path is root-owned and not group/other writable (as sshd requires of
# ChrootDirectory; /tmp is 1777, so not under it).  Removed in teardown.
make_jail() {
	local base
	for base in /run /var/lib /srv /opt; do
		[ -d "$base" ] && [ "$(stat -c '%u %a' "$base")" = "0 755" ] && break
		base=
	done
	[ -n "$base" ] || skip "no root-owned 0755 directory to create a jail in"
	JAIL=$(mktemp -d "$base/srvexample-jail.XXXXXX")
	chmod 755 "$JAIL"
	WORLD_TMPDIRS+=("$JAIL")
}

@test "privdrop: as root with -u nobody the parent runs as nobody:nogroup for good" {
	require_root
	start_daemon
	wait_for_log "^running as user nobody \(uid $NOBODY_UID, gid $NOGROUP_GID\)\$" 0
	assert_dropped "$DAEMON_PID" "$NOBODY_UID" "$NOGROUP_GID"
}

@test "privdrop: a child serving a client runs as nobody:nogroup too" {
	local child
	require_root
	start_daemon
	hold_client 'Hello there!\n'
	child=$(child_for_port "$HOLD_PORT")
	assert_dropped "$child" "$NOBODY_UID" "$NOGROUP_GID"
	release_client
	assert_bytes "$HOLD_OUT" 'You said:Hello there!\n'
}

@test "privdrop: group sets the gid of parent and children" {
	local gid child
	require_root
	gid=$(getent group daemon | cut -d: -f3)
	[ -n "$gid" ] || skip "no group daemon"
	start_daemon -o group=daemon
	wait_for_log "^running as user nobody \(uid $NOBODY_UID, gid $gid\)\$" 0
	assert_dropped "$DAEMON_PID" "$NOBODY_UID" "$gid"
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT")
	assert_dropped "$child" "$NOBODY_UID" "$gid"
}

@test "privdrop: a privileged port works as root and is served by nobody" {
	local port child
	require_root
	port=$(free_privileged_port)
	[ -n "$port" ] || skip "no free port below 1024"
	DAEMON_FIXED_PORT=$port start_daemon
	wait_for_log "^listening on 127\.0\.0\.1 port $port\$" 0
	assert_dropped "$DAEMON_PID" "$NOBODY_UID" "$NOGROUP_GID"
	assert_serves
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT")
	assert_dropped "$child" "$NOBODY_UID" "$NOGROUP_GID"
}

@test "privdrop: started as non-root: says so once, no privilege change, serves" {
	local uid
	uid=$(id -u)
	if [ "$uid" = 0 ]; then
		as_nobody
		uid=$NOBODY_UID
	fi
	start_daemon
	[ "$(log_count "^not started as root: running as uid $uid, no privilege change\$")" -eq 1 ]
	[ "$(log_count '^running as user ')" -eq 0 ]
	[ "$(ids "$DAEMON_PID" Uid)" = "$uid $uid $uid $uid" ]
	assert_serves
}

@test "privdrop: non-root with CAP_NET_BIND_SERVICE binds a low port, then drops the capability" {
	local port child cap
	require_root
	setpriv --help 2>&1 | grep -q -- --ambient-caps || skip "setpriv has no --ambient-caps"
	port=$(free_privileged_port)
	[ -n "$port" ] || skip "no free port below 1024"
	# shellcheck disable=SC2054 # setpriv takes comma-separated capability lists
	DAEMON_PREFIX=(setpriv --reuid=nobody --regid=nogroup --clear-groups
	    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service)
	CONF=/dev/null
	DAEMON_FIXED_PORT=$port start_daemon
	wait_for_log "^listening on 127\.0\.0\.1 port $port\$" 0
	for cap in CapEff CapPrm CapAmb; do
		[ "$(proc_status "$DAEMON_PID" "$cap")" = "$NOCAPS" ] ||
		    fail "parent $cap: $(proc_status "$DAEMON_PID" "$cap")"
	done
	assert_serves
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT")
	for cap in CapEff CapPrm CapAmb; do
		[ "$(proc_status "$child" "$cap")" = "$NOCAPS" ] ||
		    fail "child $cap: $(proc_status "$child" "$cap")"
	done
}

@test "privdrop: an unknown group is an error naming it (-n and start)" {
	require_root
	run --separate-stderr "$SRVEXAMPLE" -n -f /dev/null -u nobody -o group=nosuchgroup
	[ "$status" -eq 1 ]
	assert_stderr_line 'srvexample: group "nosuchgroup": no such group'
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 \
	    -p "$(free_port)" -u nobody -o group=nosuchgroup
	[ "$status" -eq 1 ]
	assert_stderr_line 'srvexample: group "nosuchgroup": no such group'
	refute_stderr '^ready: '
}

@test "privdrop: never serves as uid 0: -u root is refused" {
	require_root
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 \
	    -p "$(free_port)" -u root
	[ "$status" -eq 1 ] || fail "exit $status; stderr: $stderr"
	assert_stderr 'root'
	refute_stderr '^ready: '
}

@test "privdrop: chroot: parent and child are confined to the directory" {
	local dir child
	require_root
	make_jail
	dir=$JAIL
	start_daemon -o chroot="$dir" -o resolve=no
	[ "$(readlink "/proc/$DAEMON_PID/root")" = "$dir" ] ||
	    fail "parent root: $(readlink "/proc/$DAEMON_PID/root")"
	assert_dropped "$DAEMON_PID" "$NOBODY_UID" "$NOGROUP_GID"
	hold_client 'Hello there!\n'
	child=$(child_for_port "$HOLD_PORT")
	[ "$(readlink "/proc/$child/root")" = "$dir" ] ||
	    fail "child root: $(readlink "/proc/$child/root")"
	release_client
	assert_bytes "$HOLD_OUT" 'You said:Hello there!\n'
}

@test "privdrop: a chroot directory writable by others, or not owned by root, is refused" {
	local dir
	require_root
	make_jail
	dir=$JAIL
	chmod 777 "$dir"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 \
	    -p "$(free_port)" -u nobody -o chroot="$dir"
	[ "$status" -eq 1 ] || fail "0777 jail: exit $status; stderr: $stderr"
	assert_stderr "${dir//./\\.}"
	refute_stderr '^ready: '
	chmod 775 "$dir"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 \
	    -p "$(free_port)" -u nobody -o chroot="$dir"
	[ "$status" -eq 1 ] || fail "0775 jail: exit $status; stderr: $stderr"
	assert_stderr "${dir//./\\.}"
	chmod 755 "$dir"
	chown nobody "$dir"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 \
	    -p "$(free_port)" -u nobody -o chroot="$dir"
	[ "$status" -eq 1 ] || fail "jail owned by nobody: exit $status; stderr: $stderr"
	assert_stderr "${dir//./\\.}"
}

@test "privdrop: a missing chroot directory is an error naming it (-n and start)" {
	require_root
	run --separate-stderr "$SRVEXAMPLE" -n -f /dev/null -u nobody -o chroot="$BATS_TEST_TMPDIR/nojail"
	[ "$status" -eq 1 ] || fail "-n: exit $status"
	assert_stderr "${BATS_TEST_TMPDIR//./\\.}/nojail"
	run --separate-stderr timeout 10 "$SRVEXAMPLE" -d -f /dev/null -l 127.0.0.1 \
	    -p "$(free_port)" -u nobody -o chroot="$BATS_TEST_TMPDIR/nojail"
	[ "$status" -eq 1 ]
	assert_stderr "${BATS_TEST_TMPDIR//./\\.}/nojail"
}

@test "privdrop: a child (-d) holds only stdin, stdout, stderr and its client's socket" {
	local child inode want got
	start_daemon
	hold_client 'x\n'
	child=$(child_for_port "$HOLD_PORT")
	inode=$(socket_inode "$PORT" "$HOLD_PORT")
	got=$(fd_report "$child" | sed "s/socket:\[$inode\]/CLIENT/" | sort)
	want=$(printf '%s\n' "0 -> /dev/null" "1 -> $DAEMON_LOG" "2 -> $DAEMON_LOG" | sort)
	# Exactly one more: the client socket, at any number.
	[ "$(printf '%s\n' "$got" | grep -c ' -> CLIENT$')" -eq 1 ] || fail "fds: $got"
	[ "$(printf '%s\n' "$got" | grep -v ' -> CLIENT$')" = "$want" ] ||
	    fail "child fds:"$'\n'"$got"$'\n'"expected:"$'\n'"$want"$'\n'"+ the client socket"
	echo "# child fds: $(printf '%s\n' "$got" | tr '\n' ';')" >&3
}

@test "privdrop: a detached child holds no listener, no pidfile, nothing but /dev/null, its client and a log socket" {
	local child inode l target listeners
	make_piddir
	start_detached "$PIDDIR/x.pid"
	hold_client 'x\n'
	child=$(DAEMON_PID=$DPID child_for_port "$HOLD_PORT")
	inode=$(socket_inode "$PORT" "$HOLD_PORT")
	listeners=$(awk '$4 == "0A" { print $10 }' /proc/net/tcp /proc/net/tcp6)
	while read -r l; do
		target=${l#* -> }
		case $target in
		/dev/null | "socket:[$inode]") ;;
		socket:\[*\])
			l=${target#socket:[}
			l=${l%]}
			if printf '%s\n' "$listeners" | grep -qx "$l"; then
				fail "the child holds a listening socket: $target"
			fi
			# Any other socket must not be TCP (a syslog socket is AF_UNIX).
			! awk -v i="$l" '$10 == i { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 ||
			    fail "the child holds another TCP socket: $target"
			;;
		*) fail "the child holds $l" ;;
		esac
	done < <(fd_report "$child")
	echo "# detached child fds: $(fd_report "$child" | tr '\n' ';')" >&3
}
