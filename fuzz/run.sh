#!/usr/bin/env bash
# run.sh: build the libFuzzer harnesses with clang, then fuzz each one for a
# while from a copy of its seed corpus, or (--regress) run each once over the
# committed corpus and fuzz/regress inputs, without fuzzing.
#
# usage: fuzz/run.sh [-t SECONDS] [BUILDDIR]   fuzz each harness SECONDS (60)
#        fuzz/run.sh --regress [BUILDDIR]      replay corpus and regress inputs
#        fuzz/run.sh --build [BUILDDIR]        only build
#
# BUILDDIR defaults to fuzz/build.  Environment: CC (clang), CONFIG_H (the
# configured config.h, default the one at the top of the tree), FUZZ_CFLAGS
# (extra compiler flags), FUZZ_ARGS (extra libFuzzer flags).
# Exit status: 0 all passed, 1 a harness failed or found a crash, 77 (the
# automake skip status) in --regress mode when CC cannot build a fuzzer.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harnesses=(session conf proxy policy)
mode=fuzz
seconds=60

usage() {
	echo "usage: fuzz/run.sh [--regress | --build | -t SECONDS] [BUILDDIR]" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	--regress) mode=regress ;;
	--build) mode=build ;;
	-t) [ $# -ge 2 ] || usage; seconds=$2; shift ;;
	-h | --help) usage ;;
	-*) usage ;;
	*) break ;;
	esac
	shift
done
[ $# -le 1 ] || usage
case $seconds in '' | *[!0-9]*) usage ;; esac
build=${1:-$top/fuzz/build}

CC=${CC:-clang}
CONFIG_H=${CONFIG_H:-$top/config.h}
if [ ! -f "$CONFIG_H" ]; then
	echo "run.sh: $CONFIG_H: not found (run ./configure, or set CONFIG_H)" >&2
	exit 1
fi
if pkg-config --exists libbsd-overlay 2>/dev/null; then
	read -r -a bsd_cflags <<<"$(pkg-config --cflags libbsd-overlay)"
	read -r -a bsd_libs <<<"$(pkg-config --libs libbsd-overlay)"
else
	bsd_cflags=(-isystem /usr/include/bsd -DLIBBSD_OVERLAY)
	bsd_libs=(-lbsd)
fi
read -r -a extra_cflags <<<"${FUZZ_CFLAGS:-}"
read -r -a extra_args <<<"${FUZZ_ARGS:-}"

cflags=(-g -O1 -fno-omit-frame-pointer
	'-fsanitize=fuzzer,address,undefined' -fno-sanitize-recover=all
	-include "$CONFIG_H" "${bsd_cflags[@]}"
	-DSYSCONFDIR='"/etc"' -DRUNSTATEDIR='"/run"' -I"$top/src"
	"${extra_cflags[@]}")

# The sources and extra link flags of each harness.
sources() {
	case $1 in
	session) echo "fuzz/fuzz_session.c src/session.c src/clock.c" ;;
	conf) echo "fuzz/fuzz_conf.c src/conf.c src/addr.c src/log.c src/ratelimit.c" ;;
	proxy) echo "fuzz/fuzz_proxy.c src/proxy.c" ;;
	policy) echo "fuzz/fuzz_policy.c src/policy.c src/sources.c src/heap.c src/table.c src/conf.c src/addr.c src/log.c src/ratelimit.c" ;;
	esac
}
ldflags() {
	case $1 in
	session) echo "-Wl,--wrap=recv,--wrap=send" ;;	# cuts session_run's I/O
	conf) echo "" ;;
	proxy) echo "" ;;
	policy) echo "" ;;
	esac
}

# Can CC build a libFuzzer program at all?
probe() {
	local src=$build/probe.c
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	    'int LLVMFuzzerTestOneInput(const uint8_t *, size_t);' \
	    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
	    '{ return d == NULL && n > 0; }' >"$src"
	"$CC" '-fsanitize=fuzzer,address,undefined' -o "$build/probe" "$src" \
	    >/dev/null 2>&1
}

build_one() {
	local name=$1 srcs s
	local -a files=() link=()
	read -r -a srcs <<<"$(sources "$name")"
	for s in "${srcs[@]}"; do
		files+=("$top/$s")
	done
	read -r -a link <<<"$(ldflags "$name")"
	echo "CC fuzz_$name"
	"$CC" "${cflags[@]}" -o "$build/fuzz_$name" "${files[@]}" \
	    "${link[@]}" "${bsd_libs[@]}"
}

# Run one harness once over each committed input; 0 if none failed.
regress_one() {
	local name=$1
	local log=$build/logs/regress-$name.log
	local -a inputs=()
	local d
	for d in "$top/fuzz/corpus/$name" "$top/fuzz/regress/$name"; do
		[ -d "$d" ] || continue
		while IFS= read -r -d '' f; do
			inputs+=("$f")
		done < <(find "$d" -type f -print0 | sort -z)
	done
	if [ ${#inputs[@]} -eq 0 ]; then
		echo "FAIL fuzz_$name: no inputs"
		return 1
	fi
	if "$build/fuzz_$name" -timeout=25 "${extra_args[@]}" "${inputs[@]}" \
	    >"$log" 2>&1; then
		echo "PASS fuzz_$name: ${#inputs[@]} inputs"
		return 0
	fi
	echo "FAIL fuzz_$name: see $log"
	grep -E 'check failed|^Running:|ERROR|SUMMARY' "$log" | tail -n 6 || true
	return 1
}

# Fuzz one harness for $seconds from a scratch copy of its seed corpus.
fuzz_one() {
	local name=$1
	local corpus=$build/corpus/$name art=$build/artifacts/$name
	local -a dict=()
	mkdir -p "$corpus" "$art"
	cp -R "$top/fuzz/corpus/$name/." "$corpus/"
	if [ -d "$top/fuzz/regress/$name" ]; then
		cp -R "$top/fuzz/regress/$name/." "$corpus/"
	fi
	if [ -f "$top/fuzz/$name.dict" ]; then
		dict=(-dict="$top/fuzz/$name.dict")
	fi
	"$build/fuzz_$name" -max_total_time="$seconds" -timeout=25 \
	    -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" \
	    "${extra_args[@]}" "$corpus" >"$build/logs/fuzz-$name.log" 2>&1
}

# Summarise one fuzzing run: executions, coverage, findings; 0 if clean.
report_one() {
	local name=$1 status=$2
	local log=$build/logs/fuzz-$name.log final runs found
	final=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	found=$(sed -n 's/.*Test unit written to //p' "$log")
	echo "fuzz_$name: ${runs:-?} executions; ${final:-no DONE line}"
	if [ "$status" -ne 0 ] || [ -n "$found" ]; then
		echo "fuzz_$name: FAILED (exit $status), log $log"
		grep -E 'check failed|ERROR|SUMMARY' "$log" | head -n 6 || true
		[ -z "$found" ] || echo "fuzz_$name: input saved as $found"
		return 1
	fi
	return 0
}

mkdir -p "$build/logs"
if ! probe; then
	echo "run.sh: $CC cannot build a libFuzzer program" >&2
	[ "$mode" = regress ] && exit 77
	exit 1
fi
for h in "${harnesses[@]}"; do
	build_one "$h"
done

rv=0
case $mode in
build) ;;
regress)
	for h in "${harnesses[@]}"; do
		regress_one "$h" || rv=1
	done
	;;
fuzz)
	declare -A pid
	for h in "${harnesses[@]}"; do
		echo "fuzzing fuzz_$h for $seconds s (log $build/logs/fuzz-$h.log)"
		fuzz_one "$h" &
		pid[$h]=$!
	done
	for h in "${harnesses[@]}"; do
		status=0
		wait "${pid[$h]}" || status=$?
		report_one "$h" "$status" || rv=1
	done
	;;
esac
exit $rv
