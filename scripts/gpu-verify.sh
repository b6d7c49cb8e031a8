#!/usr/bin/env bash
# The one command for a GPU host (docs/gpu-host.md): configures and builds
# synthpert against the host PyTorch's libtorch (CUDA engine on) and the
# offline dependency prefix (scripts/bundle-offline-deps.sh) when present,
# then runs, logging each step:
#   1. the GPU tests (ctest -L gpu) and the full CPU suite (ctest -LE gpu)
#   2. compute-sanitizer memcheck and racecheck on the kernel test binary
#      (the [gpu] cases without [large]: every code path at small shapes)
#   3. the Hugging Face parity scripts: the forward (tests/reference/hf_parity.py)
#      on cuda and cpu, and LoRA training vs transformers + PEFT
#      (tests/reference/peft_parity.py: loss, LoRA gradients, adapter logits, NCCL)
#   4. the benchmarks (bench_attention, bench_kernels, and the trainer vs
#      transformers + PEFT: benchmarks/run_train_gpu.sh)
# and prints a summary. Logs go to $BUILD_DIR/verify/, benchmark results to
# benchmarks/results/; with $OUT set, both are copied there as well.
#
# Usage: scripts/gpu-verify.sh [--skip-build] [--only STEP[,STEP...]]
#   steps: gpu-tests cpu-tests memcheck racecheck parity bench bench-train
# Environment: BUILD_DIR (default build-gpu), JOBS, PYTHON (default python3),
# OFFLINE_DEPS (default <repo>/offline-deps), CUDA_ARCHS (default 80;90a).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-gpu}
jobs=${JOBS:-$(nproc)}
python=${PYTHON:-python3}
deps=${OFFLINE_DEPS:-$root/offline-deps}
# The bundle travels compressed (scripts/bundle-offline-deps.sh writes both).
if [[ ! -d $deps && -f $deps.tar.xz ]]; then
  tar -C "$(dirname "$deps")" -xJf "$deps.tar.xz"
fi
archs=${CUDA_ARCHS:-80;90a}
logs=$build/verify
skip_build=0
only=""
while [ $# -gt 0 ]; do
  case $1 in
    --skip-build) skip_build=1 ;;
    --only) only=$2; shift ;;
    *) echo "usage: scripts/gpu-verify.sh [--skip-build] [--only STEP[,STEP...]]" >&2; exit 2 ;;
  esac
  shift
done
wanted() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

mkdir -p "$logs"
summary=()
failed=0
record() {  # record NAME STATUS LOG
  summary+=("$(printf '%-12s %-8s %s' "$1" "$2" "$3")")
  [ "$2" = PASS ] || [ "$2" = SKIP ] || failed=1
}
run_step() {  # run_step NAME COMMAND... ; output to $logs/NAME.log
  local name=$1 log=$logs/$1.log
  shift
  echo "== $name: $*" >&2
  if "$@" >"$log" 2>&1; then record "$name" PASS "$log"; else record "$name" FAIL "$log"; tail -20 "$log" >&2; fi
}

# ---- host facts -----------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname) ($(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"))"
  echo "glibc: $(ldd --version 2>/dev/null | head -1)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo "cmake: $(cmake --version | head -1)"
  "$python" -c 'import torch; print("torch:", torch.__version__, "cuda", torch.version.cuda, "cxx11abi", torch.compiled_with_cxx11_abi())' 2>&1
  echo "git: $(git -C "$root" rev-parse HEAD 2>/dev/null) $(git -C "$root" status --porcelain 2>/dev/null | wc -l) modified"
  [ -f "$deps/MANIFEST" ] && { echo "offline deps:"; sed 's/^/  /' "$deps/MANIFEST"; }
} | tee "$logs/host.txt" >&2

# ---- configure and build ----------------------------------------------------
if [ $skip_build = 0 ]; then
  torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') || {
    echo "gpu-verify: $python cannot import torch" >&2; exit 1; }
  prefix_path="$torch_prefix"
  cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DSYNTHPERT_KERNELS=ON -DSYNTHPERT_BUILD_BENCHMARKS=ON
              "-DSYNTHPERT_CUDA_ARCHS=$archs" "-DCMAKE_CUDA_COMPILER=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")
  if [ -d "$deps/usr" ]; then
    # The bundle first, so its packages win over any partial host copies.
    prefix_path="$deps/usr;$torch_prefix"
    export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    command -v pkg-config >/dev/null || cmake_args+=("-DPKG_CONFIG_EXECUTABLE=$deps/bin/pkg-config")
    # DT_RPATH (not RUNPATH) so the bundle's libraries also resolve the
    # dependencies of other bundled libraries (cpp-httplib -> brotli, ssl).
    cmake_args+=("-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags")
    # The bundled libraries were built on Debian 12: glibc >= 2.34 and a
    # libstdc++ with GLIBCXX_3.4.30 (GCC 12) are needed at run time.
    need_glibc=2.34
    have_glibc=$(ldd --version | head -1 | grep -oE '[0-9]+\.[0-9]+$')
    if [ "$(printf '%s\n%s\n' "$need_glibc" "$have_glibc" | sort -V | head -1)" != "$need_glibc" ]; then
      echo "gpu-verify: host glibc $have_glibc is older than the bundle needs ($need_glibc); see docs/gpu-host.md" >&2
      exit 1
    fi
    libstdcxx=$(g++ -print-file-name=libstdc++.so.6 2>/dev/null)
    if [ -f "$libstdcxx" ] && ! grep -qa GLIBCXX_3.4.30 "$(readlink -f "$libstdcxx")"; then
      echo "gpu-verify: host libstdc++ lacks GLIBCXX_3.4.30 (GCC 12), needed by the bundled libraries" >&2
      exit 1
    fi
  fi
  run_step configure cmake -S "$root" -B "$build" "${cmake_args[@]}" "-DCMAKE_PREFIX_PATH=$prefix_path"
  if ! grep -q "CUDA engine ON" "$logs/configure.log"; then
    echo "gpu-verify: the configure did not enable the CUDA engine (libtorch without CUDA?)" >&2
    record cuda-engine FAIL "$logs/configure.log"
  fi
  run_step build cmake --build "$build" -j "$jobs"
fi

kernel_tests=$build/tests/kernels/test_kernels
if wanted gpu-tests; then
  run_step gpu-tests ctest --test-dir "$build" -L gpu --output-on-failure
  # ctest counts a suite that found no device as skipped, not failed; here
  # that is a failure (this script exists to run them).
  if grep -qE '\*\*\*Skipped|Not Run' "$logs/gpu-tests.log"; then
    record gpu-skipped FAIL "$logs/gpu-tests.log (GPU suites skipped: no usable CUDA device)"
  fi
fi
if wanted cpu-tests; then run_step cpu-tests ctest --test-dir "$build" -LE gpu --output-on-failure -j "$jobs"; fi
sanitizer=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
for tool in memcheck racecheck; do
  wanted $tool || continue
  if [ -x "$sanitizer" ]; then
    run_step $tool "$sanitizer" --tool $tool --error-exitcode 1 "$kernel_tests" "[gpu]~[large]"
  else
    record $tool FAIL "compute-sanitizer not found (PATH or $sanitizer)"
  fi
done
if wanted parity; then
  if "$python" -c 'import transformers' 2>/dev/null; then
    run_step parity-cuda "$python" "$root/tests/reference/hf_parity.py" --synthpert "$build/synthpert" --device cuda \
      --out "$logs/parity-cuda.json"
    run_step parity-cpu "$python" "$root/tests/reference/hf_parity.py" --synthpert "$build/synthpert" --device cpu \
      --out "$logs/parity-cpu.json"
    if "$python" -c 'import peft' 2>/dev/null; then
      run_step parity-peft "$python" "$root/tests/reference/peft_parity.py" --build "$build" --device cuda
    else
      record parity-peft SKIP "peft not importable by $python"
    fi
  else
    record parity SKIP "transformers not importable by $python"
  fi
fi
if wanted bench; then
  run_step bench-attention "$build/benchmarks/bench_attention" --python "$python"
  run_step bench-kernels "$build/benchmarks/bench_kernels" --python "$python"
fi
# The 8B-shape trainer benchmark takes several minutes; its own step name lets a
# short lease leave it out (--only).
if wanted bench-train; then
  run_step bench-train "$root/benchmarks/run_train_gpu.sh" "$build"
fi

echo >&2
echo "gpu-verify summary ($(head -1 "$logs/host.txt"))" | tee "$logs/summary.txt" >&2
printf '%s\n' "${summary[@]}" | tee -a "$logs/summary.txt" >&2
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/verify" "$OUT/results"
  cp -a "$logs/." "$OUT/verify/"
  cp -a "$root/benchmarks/results/." "$OUT/results/" 2>/dev/null || true
  echo "gpu-verify: copied logs and results to $OUT" >&2
fi
exit $failed
