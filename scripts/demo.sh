#!/usr/bin/env bash
# README's main job: installs dependencies, builds the synthpert binary and runs
# `synthpert demo` (a PerturbQA student trained from scratch on K562, HepG2 and
# Jurkat, evaluated on held-out RPE1 beside the baselines; about 5 minutes on a
# 2-core CPU after the build). Arguments go to `synthpert demo`, e.g. --full.
# Output: demo-out/ (report at demo-out/eval/report.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
TARGETS=synthpert "$root/scripts/build.sh"
cd "$root"
exec "${BUILD_DIR:-$root/build}/synthpert" demo "$@"
