#!/usr/bin/env bash
# Installs every build, test and oracle dependency of synthpert from Debian packages.
# Idempotent: when everything is present it prints nothing and exits 0.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libgloo-dev            # engine + trainer (c10d headers need gloo)
  # Debian's libtorch calls the system libblas.so.3 (BLAS_INFO=generic); without
  # OpenBLAS that is the reference BLAS, ~50x slower on matmul.
  libopenblas0-pthread
  libsentencepiece-dev sentencepiece  # tokenizer + spm_train for tests and demo
  libicu-dev                          # tokenizer: Unicode normalization (NFC) and character classes
  nlohmann-json3-dev catch2 libcli11-dev libcpp-httplib-dev libpcre2-dev
  python3-torch python3-numpy python3-sklearn  # CPU oracles under /usr/bin/python3
  nodejs npm                          # tokenizer / template / server oracles
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

# Node may come from outside Debian (a newer node on PATH); only install Debian's when absent.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
  [ ${#missing[@]} -eq 0 ] && exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
