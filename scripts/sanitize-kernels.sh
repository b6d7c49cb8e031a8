#!/usr/bin/env bash
# compute-sanitizer over a test binary, judged on this project's kernels.
#   memcheck: any error fails (out-of-bounds or misaligned accesses, leaks of
#             device memory, CUDA API calls that fail).
#   racecheck: a shared-memory hazard in one of our kernels fails (all of
#             them live in namespace synthpert, so their names say so);
#             hazards reported inside library kernels (cuBLAS's nvjet
#             split-K GEMMs, which the LoRA tests call) are listed as notes:
#             they are neither our code nor something our arguments reach.
# Either tool fails when the tests themselves fail.
#
# Usage: scripts/sanitize-kernels.sh memcheck|racecheck BINARY [TEST ARGS...]
# Environment: SANITIZER (default: compute-sanitizer on PATH, else under CUDA_HOME).
set -uo pipefail

[ $# -ge 2 ] || { echo "usage: scripts/sanitize-kernels.sh memcheck|racecheck BINARY [TEST ARGS...]" >&2; exit 2; }
tool=$1
shift
case $tool in memcheck | racecheck) ;; *) echo "sanitize-kernels: unknown tool '$tool'" >&2; exit 2 ;; esac
sanitizer=${SANITIZER:-$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")}
[ -x "$sanitizer" ] || { echo "sanitize-kernels: compute-sanitizer not found ($sanitizer)" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Lazy module loading: the sanitizer instruments the kernels the tests launch,
# not every kernel image of libtorch at the first CUDA call.
if [ "$tool" = memcheck ]; then
  CUDA_MODULE_LOADING=LAZY "$sanitizer" --tool memcheck --error-exitcode 1 "$@" 2>&1 | tee "$log"
  exit "${PIPESTATUS[0]}"
fi

CUDA_MODULE_LOADING=LAZY "$sanitizer" --tool racecheck "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ $rc = 0 ] || { echo "sanitize-kernels: the tests failed under racecheck (exit $rc)"; exit "$rc"; }
grep -q "RACECHECK SUMMARY" "$log" || { echo "sanitize-kernels: racecheck printed no summary"; exit 1; }
# Each hazard names two accesses, "... access at KERNEL+0xOFFSET".
ours=$(grep -E 'access at .*synthpert' "$log" | wc -l)
theirs=$(grep -E 'access at ' "$log" | grep -v synthpert | sed -E 's/.*access at ([^+ ]+).*/\1/' | sort -u)
if [ -n "$theirs" ]; then
  echo "sanitize-kernels: hazards reported in library kernels (not ours), noted, not failed:"
  printf '  %s\n' $theirs
fi
if [ "$ours" -gt 0 ]; then
  echo "sanitize-kernels: $ours hazard accesses in synthpert kernels"
  exit 1
fi
echo "sanitize-kernels: no hazard in synthpert kernels"
