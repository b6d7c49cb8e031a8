#!/usr/bin/env bash
# What a long prompt joining the continuous batch costs the sequences already
# decoding on the CPU: chunked prefill (ours, CHUNK tokens per step) against
# whole-prompt prefill (--chunk 0, the scheduler without chunking), same model,
# same run. Writes benchmarks/results/scheduler-cpu-<date>.*
# Usage: benchmarks/run_scheduler_cpu.sh [PRESET=small]
# Environment: CHUNK (256), LONG (2048), ROWS (4), THREADS (1), BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
preset=${1:-small}
chunk=${CHUNK:-256}
export OMP_NUM_THREADS=${THREADS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --build "$build" --target synthpert bench_scheduler >/dev/null
"$build/synthpert" init-model --arch llama --preset "$preset" --out "$work/model" --seed 1 >/dev/null
args=(--rows "${ROWS:-4}" --long "${LONG:-2048}" --reps 3)
"$build/benchmarks/bench_scheduler" "$work/model" "${args[@]}" --chunk "$chunk" > "$work/ours.json"
"$build/benchmarks/bench_scheduler" "$work/model" "${args[@]}" --chunk 0 > "$work/peer.json"
versions=$(/usr/bin/python3 -c "import torch,json,platform;print(json.dumps({'libtorch':torch.__version__,'cpu':platform.processor() or platform.machine(),'threads':torch.get_num_threads()}))")
/usr/bin/python3 "$root/benchmarks/write_results.py" --benchmark scheduler --device cpu \
  --command "benchmarks/run_scheduler_cpu.sh $preset" --ours "$work/ours.json" --peer "$work/peer.json" \
  --peer-name "whole-prompt prefill (same scheduler, chunk 0)" --versions "$versions" \
  --notes "Model: init-model --preset $preset (llama, float32), one thread. ${ROWS:-4} sequences with 16-token prompts decode greedily; after a few decode steps a ${LONG:-2048}-token prompt joins. Ours: prefill in chunks of $chunk tokens per step, a decode step between two chunks; peer: the whole prompt in one step. Decode stall: the largest gap between two tokens of a decoding sequence from the arrival until the step after the long prompt's first token. Median of 3 after one warm-up."
