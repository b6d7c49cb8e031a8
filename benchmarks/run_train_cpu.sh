#!/usr/bin/env bash
# CPU trainer throughput, ours (bench_train) vs LoRA training written in plain
# PyTorch eager (peer_train_eager.py) on the same random model, same shapes,
# same thread count, in the same run; the two alternate per sequence length so
# a busy machine slows both alike. Writes benchmarks/results/train-cpu-<date>.*
# Usage: benchmarks/run_train_cpu.sh [PRESET=small]
# Environment: SEQS (default "128 512 1024"), BATCH (4), THREADS (1), BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
preset=${1:-small}
export OMP_NUM_THREADS=${THREADS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --build "$build" --target synthpert bench_train >/dev/null
"$build/synthpert" init-model --arch llama --preset "$preset" --out "$work/model" --seed 1 >/dev/null
echo '{"rows":[]}' > "$work/ours.json"
echo '{"rows":[]}' > "$work/peer.json"
merge() {  # appends the rows of $2 to the file $1
  /usr/bin/python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); a["rows"]+=json.load(open(sys.argv[2]))["rows"]; json.dump(a,open(sys.argv[1],"w"))' "$1" "$2"
}
args=(--batch "${BATCH:-4}" --steps 7 --warmup 2 --lora-r 16)
for seq in ${SEQS:-128 512 1024}; do
  "$build/benchmarks/bench_train" "$work/model" --seq "$seq" "${args[@]}" --dtype f32 --device cpu > "$work/o.json"
  merge "$work/ours.json" "$work/o.json"
  /usr/bin/python3 "$root/benchmarks/peer_train_eager.py" "$work/model" --seq "$seq" "${args[@]}" > "$work/p.json"
  merge "$work/peer.json" "$work/p.json"
done
versions=$(/usr/bin/python3 -c "import torch,json,platform;print(json.dumps({'libtorch':torch.__version__,'python_torch':torch.__version__,'cpu':platform.processor() or platform.machine(),'threads':torch.get_num_threads()}))")
/usr/bin/python3 "$root/benchmarks/write_results.py" --benchmark train --device cpu \
  --command "benchmarks/run_train_cpu.sh $preset" --ours "$work/ours.json" --peer "$work/peer.json" \
  --peer-name "PyTorch eager LoRA (python, same model)" --versions "$versions" \
  --notes "Model: init-model --preset $preset (llama, float32). LoRA r=16, alpha 16, on all seven projections; batch ${BATCH:-4} random sequences of exactly SEQ tokens, next-token loss on every position, AdamW lr 1e-4, clipping at 1.0. tokens/s from the median of 7 optimizer steps after 2 warm-up steps (ours: the trainer's whole step including its metrics line; peer: forward, backward, clip, step). Peak memory: the process's peak resident set (ru_maxrss) over its whole life, model load and runtime included. Ours raises glibc's mmap threshold at start (common/host_allocator.h), as the synthpert CLI does."
