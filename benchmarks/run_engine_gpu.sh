#!/usr/bin/env bash
# Engine throughput on one GPU: ours (bench_engine, bf16) vs Hugging Face
# transformers (SDPA, its KV cache, argmax on the device) on a random-init
# Llama-3.2-1B shape, in the same run. Prefill over batch x 512 tokens;
# greedy decode of 128 tokens at batches 1, 16 and 64 (ours through the
# packed prefill and the paged decode kernel).
# Writes benchmarks/results/engine-<gpu>-<date>.{json,md}.
# Usage: benchmarks/run_engine_gpu.sh [BUILD_DIR] [MODEL_DIR]   (PYTHON: default python3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
model=${2:-/tmp/synthpert-llama3-1b}
[ -f "$model/config.json" ] || "$build/synthpert" init-model --arch llama --preset llama3-1b --dtype bf16 --out "$model"
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--prompt 512 --new 128 --batches 1,16,64 --reps 3 --device cuda --dtype bfloat16)
# torch names the GPU where a container has no nvidia-smi.
gpu=$("$python" -c 'import torch; print(torch.cuda.get_device_name())')
versions=$("$python" -c 'import json,torch,transformers; print(json.dumps({"torch":torch.__version__,"cuda":torch.version.cuda,"transformers":transformers.__version__}))')
command=$(printf '%q ' benchmarks/run_engine_gpu.sh "$build" "$model")
echo '{"rows":[]}' > "$work/peer.json"
write() {  # the results so far, so a run cut short keeps what it measured
  "$python" "$here/write_results.py" --benchmark engine --device "$gpu" --command "${command% }" \
    --ours "$work/ours.json" --peer "$work/peer.json" --peer-name "transformers (sdpa, bf16)" --versions "$versions" \
    --notes "Model: init-model --preset llama3-1b (llama, bf16). Prefill: one forward over batch x 512 tokens with the last token's logits. Decode: greedy tokens/s of the 127 decode forwards after the prefill, timed from the first token to the last (argmax on the device on both sides; ours also brings each token to the host, as generation must to stop a row). Median of 3 after one warm-up; device synced at the end of each timed region."
}
"$build/benchmarks/bench_engine" "$model" "${args[@]}" > "$work/ours.json"
write
"$python" "$here/peer_engine_hf.py" "$model" "${args[@]}" > "$work/p.json"
mv "$work/p.json" "$work/peer.json"
write
