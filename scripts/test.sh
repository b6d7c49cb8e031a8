#!/usr/bin/env bash
# README's test command: installs dependencies, builds, runs the CPU test suites.
# GPU suites run too and report themselves skipped when no CUDA device exists.
# Pass ctest arguments through, e.g. scripts/test.sh -L slow.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
if [ $# -eq 0 ]; then set -- -LE slow; fi
ctest --output-on-failure -j "${JOBS:-$(nproc)}" "$@"
