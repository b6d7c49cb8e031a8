#!/usr/bin/env bash
# Runs each Catch2 test case of BINARY that FILTER selects in a process of its
# own. A fatal signal ends a Catch2 binary with every case after the one that
# crashed unrun; here the others still run and report. A case that dies of a
# signal is run once more under cuda-gdb (or gdb) where one is installed, and
# its backtrace and loaded libraries are printed: the evidence a short GPU
# lease needs to come back with.
#
# Usage: scripts/run-tests-isolated.sh BINARY FILTER [CATCH ARGS...]
# Exit status: 0 when every case passed, 1 when one failed or none matched,
# 77 when the binary reports no CUDA device (tests/gpu_catch_main.cpp).
set -uo pipefail

[ $# -ge 2 ] || { echo "usage: scripts/run-tests-isolated.sh BINARY FILTER [CATCH ARGS...]" >&2; exit 2; }
binary=$1
filter=$2
shift 2

names=$("$binary" "$filter" --list-test-names-only)
rc=$?
if [ $rc = 77 ]; then echo "$names"; exit 77; fi
# Catch2 v2's --list-test-names-only exits with the number of names listed.
if [ -z "$names" ]; then
  echo "run-tests-isolated: no test case matches '$filter'" >&2
  exit 1
fi

debugger=$(command -v cuda-gdb || command -v gdb || true)
failed=0
total=0
while IFS= read -r name; do
  [ -n "$name" ] || continue
  total=$((total + 1))
  # A test name is a Catch2 test spec once its special characters are escaped.
  spec=$(printf '%s' "$name" | sed -e 's/[][\\,*]/\\&/g')
  echo "=== $name"
  "$binary" "$spec" "$@"
  rc=$?
  if [ $rc = 0 ]; then
    echo "=== PASS: $name"
    continue
  fi
  failed=$((failed + 1))
  if [ $rc -gt 128 ]; then
    echo "=== CRASH (signal $((rc - 128))): $name"
    if [ -n "$debugger" ]; then
      echo "--- backtrace under $(basename "$debugger")"
      # The debugger stops at the signal before Catch2's handler runs.
      timeout -k 5 120 "$debugger" -q -batch -ex 'set pagination off' -ex 'set print thread-events off' \
        -ex run -ex bt -ex 'info sharedlibrary' --args "$binary" "$spec" 2>&1 | tail -n 200
    else
      echo "--- no cuda-gdb or gdb here: no backtrace"
    fi
  else
    echo "=== FAIL (exit $rc): $name"
  fi
done <<<"$names"

echo "run-tests-isolated: $((total - failed)) of $total passed"
[ $failed = 0 ]
