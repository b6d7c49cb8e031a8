#!/usr/bin/env bash
# CPU engine throughput, ours vs plain PyTorch eager on the same random model,
# in the same run, same thread count. Writes benchmarks/results/engine-cpu-<date>.*
# Usage: benchmarks/run_engine_cpu.sh [PRESET=small]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
preset=${1:-small}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --build "$build" --target synthpert bench_engine >/dev/null
"$build/synthpert" init-model --arch llama --preset "$preset" --out "$work/model" --seed 1 >/dev/null
args=(--prompt 128 --new 32 --batches 1,8 --reps 5)
"$build/benchmarks/bench_engine" "$work/model" "${args[@]}" > "$work/ours.json"
/usr/bin/python3 "$root/benchmarks/peer_engine.py" "$work/model" "${args[@]}" > "$work/peer.json"
versions=$(/usr/bin/python3 -c "import torch,json,platform;print(json.dumps({'libtorch':torch.__version__,'python_torch':torch.__version__,'cpu':platform.processor() or platform.machine(),'threads':torch.get_num_threads()}))")
/usr/bin/python3 "$root/benchmarks/write_results.py" --benchmark engine --device cpu \
  --command "benchmarks/run_engine_cpu.sh $preset" --ours "$work/ours.json" --peer "$work/peer.json" \
  --peer-name "PyTorch eager (python, same model)" --versions "$versions" \
  --notes "Model: init-model --preset $preset (llama, float32). Prefill: one forward over batch x 128 tokens with the last token's logits. Decode: greedy tokens/s of the decode forwards after the prefill (new - 1 tokens per row), timed on both sides from the first token on the host to the last. Median of 5 after one warm-up. Ours raises glibc's mmap threshold at start (common/host_allocator.h), as the synthpert CLI does."
