#!/usr/bin/env bash
# regress.sh: the make check entry for the fuzzers: build the harnesses and
# run each once over its seed corpus and fuzz/regress inputs (no fuzzing).
# Exits 77 (skipped) when no clang with libFuzzer is available.
set -eu
: "${top_srcdir:?must be set (make check exports it)}"
: "${top_builddir:?must be set (make check exports it)}"
CONFIG_H=$top_builddir/config.h
export CONFIG_H
exec "$top_srcdir/fuzz/run.sh" --regress "$top_builddir/fuzz/build"
