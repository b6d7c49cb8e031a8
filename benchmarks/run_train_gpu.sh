#!/usr/bin/env bash
# Trainer benchmark on one GPU: ours (bench_train) vs Hugging Face transformers
# + PEFT (peer_train.py) on a random-init Llama-3.1-8B shape, LoRA r=32 on all
# linear layers, bf16, sequence lengths 512..8192; QLoRA beside our LoRA.
# Writes benchmarks/results/train-<gpu>-<date>.{json,md}.
# Usage: benchmarks/run_train_gpu.sh [BUILD_DIR] [MODEL_DIR]
# Environment: SEQS (sequence lengths, default "512 1024 2048 4096 8192"),
# PYTHON (default python3). Exits non-zero, after writing the results, when a
# run of either side failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
model=${2:-/tmp/synthpert-llama3-8b}
[ -f "$model/config.json" ] || "$build/synthpert" init-model --arch llama --preset llama3-8b --dtype bf16 --out "$model"
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
echo '{"rows":[]}' > "$work/ours.json"
echo '{"rows":[]}' > "$work/peer.json"
merge() {  # appends the rows of $2 to the file $1
  "$python" -c 'import json,sys; a=json.load(open(sys.argv[1])); a["rows"]+=json.load(open(sys.argv[2]))["rows"]; json.dump(a,open(sys.argv[1],"w"))' "$1" "$2"
}
# torch names the GPU where a container has no nvidia-smi.
gpu=$("$python" -c 'import torch; print(torch.cuda.get_device_name())')
versions=$("$python" -c 'import json,torch,transformers,peft; print(json.dumps({"torch":torch.__version__,"transformers":transformers.__version__,"peft":peft.__version__}))')
command=$(printf '%q ' benchmarks/run_train_gpu.sh "$build" "$model")
write() {  # the results so far, so a run cut short keeps what it measured
  "$python" "$here/write_results.py" --benchmark train --device "$gpu" --command "${command% }" \
    --ours "$work/ours.json" --peer "$work/peer.json" --peer-name "transformers+peft (sdpa)" --versions "$versions"
}
for seq in ${SEQS:-512 1024 2048 4096 8192}; do
  "$build/benchmarks/bench_train" "$model" --seq "$seq" --lora-r 32 --dtype bf16 --device cuda > "$work/o.json" \
    && merge "$work/ours.json" "$work/o.json" || { echo "ours: seq $seq failed" >&2; failures=$((failures + 1)); }
  write  # ours alone, in case the run is cut short during the peer's
  "$python" "$here/peer_train.py" "$model" --seq "$seq" --lora-r 32 > "$work/p.json" \
    && merge "$work/peer.json" "$work/p.json" || { echo "peer: seq $seq failed" >&2; failures=$((failures + 1)); }
  write
done
# QLoRA at 2048, compared with the same peer row (PEFT LoRA in bf16): the
# peer's "lora seq 2048" row is copied under the QLoRA row's name.
"$build/benchmarks/bench_train" "$model" --seq 2048 --qlora --name qlora > "$work/q.json" \
  && merge "$work/ours.json" "$work/q.json" || { echo "ours: QLoRA failed" >&2; failures=$((failures + 1)); }
"$python" -c 'import json,sys
p=json.load(open(sys.argv[1]))
p["rows"]+=[dict(r,name="q"+r["name"]) for r in p["rows"] if r["name"].startswith("lora seq 2048")]
json.dump(p,open(sys.argv[1],"w"))' "$work/peer.json"
write
[ "$failures" = 0 ] || { echo "run_train_gpu: $failures run(s) failed; their rows are missing" >&2; exit 1; }
