#!/bin/sh
# bench/names.sh: the cost of names (resolve yes) with real lookups: N
# clients (default 1000), one after the other, each from its own address
# of 127.0.0.0/8, each with a PTR and an A record in a dnsmasq of a network
# and mount namespace of its own (unshare(1), as root), then the same N
# again (answered from the name cache).  Prints, per connection, the
# children's page faults and CPU (the parent's cminflt, cutime and cstime:
# every child is reaped) and the parent's own, for each round.
# NAMES_BENCH_HOSTS is the hosts line of nsswitch.conf (default
# "files myhostname mymachines dns").
#   bench/names.sh [-n N] [BINARY]
set -eu

n=1000
while getopts n: opt; do
	case $opt in
	n) n=$OPTARG ;;
	*) echo "usage: $0 [-n N] [binary]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
bin=$(readlink -f "${1:-src/srvexample}")

if [ "${NAMES_BENCH_INSIDE:-}" != 1 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (namespaces)" >&2; exit 1; }
	dir=$(mktemp -d)
	chmod 755 "$dir"
	trap 'rm -rf "$dir"' EXIT
	printf '127.0.0.1 localhost\n' >"$dir/hosts"
	printf 'nameserver 127.0.0.53\n' >"$dir/resolv.conf"
	printf 'hosts: %s\n' "${NAMES_BENCH_HOSTS:-files myhostname mymachines dns}" \
	    >"$dir/nsswitch.conf"
	NAMES_BENCH_INSIDE=1 NAMES_BENCH_DIR=$dir \
	    unshare --mount --net --propagation private -- "$0" -n "$n" "$bin"
	exit
fi

dir=$NAMES_BENCH_DIR
ip link set lo up
for f in hosts resolv.conf nsswitch.conf; do
	mount --bind "$dir/$f" "/etc/$f"
done
python3 - "$n" >"$dir/records" <<'EOF'
import sys
for i in range(int(sys.argv[1])):
    print("127.0.%d.%d h%d.bench.example" % (1 + i // 250, 1 + i % 250, i))
EOF
dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll \
    --listen-address=127.0.0.53 --bind-interfaces --port=53 --user=root \
    --pid-file= --addn-hosts="$dir/records" --cache-size=0 &
dns=$!
port=3456
# Under perf stat (when there is one): the page faults and CPU of the
# daemon and every process it made, the resolver included.
perf=
command -v perf >/dev/null && perf stat true >/dev/null 2>&1 &&
    perf="perf stat -x, -e page-faults,task-clock -o $dir/perf --"
$perf "$bin" -d -f /dev/null -l 127.0.0.1 -p "$port" -u nobody \
    -o max-per-source=0 >"$dir/log" 2>&1 &
top=$!
srv=$top
if [ -n "$perf" ]; then
	while srv=$(pgrep -P "$top" | head -n 1); [ -z "$srv" ]; do
		sleep 0.05
	done
fi
trap 'kill $srv $dns 2>/dev/null; wait' EXIT
python3 - "$n" "$port" "$srv" <<'EOF'
import os, socket, sys, time
n, port, srv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tick = os.sysconf("SC_CLK_TCK")

def ready():
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit("no daemon: " + open(os.environ["NAMES_BENCH_DIR"] + "/log").read())

def stat():
    f = open("/proc/%s/stat" % srv).read().rsplit(")", 1)[1].split()
    # minflt cminflt utime stime cutime cstime (fields 10, 12, 14-17)
    return [int(f[i]) for i in (7, 9, 11, 12, 13, 14)]

def one(src):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"hello\n")
    while s.recv(4096):
        pass
    s.close()

ready()
time.sleep(0.5)
for name in ("lookups", "cache"):
    a = stat()
    t = time.monotonic()
    for i in range(n):
        one("127.0.%d.%d" % (1 + i // 250, 1 + i % 250))
    time.sleep(0.5)     # the last children are reaped
    b = stat()
    d = [y - x for x, y in zip(a, b)]
    print("%-8s n=%d child_faults=%.1f child_cpu_us=%.0f parent_faults=%.2f "
          "parent_cpu_us=%.0f wall_ms=%.2f" % (name, n, d[1] / n,
          (d[4] + d[5]) * 1e6 / tick / n, d[0] / n,
          (d[2] + d[3]) * 1e6 / tick / n, (time.monotonic() - t) * 1e3 / n))
EOF
kill "$srv"
wait "$top" || true
grep -c '^Connection from h[0-9]*\.bench\.example ' "$dir/log" |
    sed 's/^/named connections: /'
if [ -n "$perf" ]; then
	awk -F, -v n=$((2 * n)) '$3 == "page-faults" || $3 ~ /^task-clock/ {
	    printf "all processes, per connection (both rounds, startup included): %s %.1f\n", $3, $1 / n }' \
	    "$dir/perf"
fi
