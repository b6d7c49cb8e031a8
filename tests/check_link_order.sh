#!/usr/bin/env bash
# Each binary must list libstdc++ before any libtorch/c10 library among its
# DT_NEEDED entries (cmake/Dependencies.cmake says why: PyTorch wheels'
# libtorch_cpu exports a second copy of std::filesystem's iterators).
# Usage: tests/check_link_order.sh BINARY...
set -euo pipefail
status=0
for binary in "$@"; do
  needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  stdcxx=$(grep -n '^libstdc++\.so' <<<"$needed" | head -1 | cut -d: -f1 || true)
  torch=$(grep -nE '^lib(torch|c10)' <<<"$needed" | head -1 | cut -d: -f1 || true)
  if [ -z "$stdcxx" ]; then
    echo "FAIL $binary: libstdc++ is not among its DT_NEEDED entries"; status=1
  elif [ -n "$torch" ] && [ "$stdcxx" -gt "$torch" ]; then
    echo "FAIL $binary: libstdc++ is DT_NEEDED entry $stdcxx, after libtorch/c10 at entry $torch"; status=1
  else
    echo "ok   $binary: libstdc++ at entry $stdcxx${torch:+, libtorch/c10 from entry $torch}"
  fi
done
exit $status
