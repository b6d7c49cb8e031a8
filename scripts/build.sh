#!/usr/bin/env bash
# Configures and builds synthpert into build/ (or $BUILD_DIR) with Ninja.
# Extra arguments go to cmake's configure step, e.g. -DSYNTHPERT_KERNELS=OFF.
# TARGETS="synthpert" builds only the named targets (default: everything).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "$@" >/dev/null
# shellcheck disable=SC2086  # TARGETS is a space-separated list
cmake --build "$build" -j "$jobs" ${TARGETS:+--target $TARGETS}
