#!/usr/bin/env bash
# The one command for a GPU host (docs/gpu-host.md): configures and builds
# synthpert against the host PyTorch's libtorch (CUDA engine on) and the
# offline dependency prefix (scripts/bundle-offline-deps.sh) when present,
# then runs steps in priority order, logging each:
#   gpu-small, gpu-large   the [gpu] kernel tests, small shapes first
#   engine-dispatch        the engine's entries to the kernels through a CUDA
#                          libtorch, each test case in a process of its own
#                          (a crash is rerun under cuda-gdb for a backtrace)
#   parity-peft            LoRA training vs transformers + PEFT (loss, LoRA
#                          gradients, our adapter in PEFT, NCCL world of one)
#   parity-cuda, parity-cpu  engine logits vs transformers (hf_parity.py)
#   memcheck, racecheck    compute-sanitizer on the small [gpu] kernel tests
#                          (not the [engine_dispatch] ones), judged by
#                          scripts/sanitize-kernels.sh
#   cpu-tests              the CPU suites against this host's libtorch
#   bench-attention, bench-kernels, bench-train   benchmarks vs PyTorch / PEFT
#   bench-engine           prefill and greedy decode vs transformers (1B shape)
#
# Device time on a lent GPU is short, so a run can be bounded: with
# --deadline S no step starts once S seconds have passed since the script
# began, and each step is killed at its cap or at the deadline, whichever is
# sooner; steps that did not fit are listed as NOT-RUN. Only the targets the
# chosen steps need are built, for this GPU's architecture only (CI compiles
# every architecture). With $OUT set, the summary and a tarball of all logs
# and new benchmark results are written there after every step, so a run
# killed from outside still leaves its evidence.
#
# Usage: scripts/gpu-verify.sh [--plan correctness|speed|all] [--only STEP[,STEP...]]
#                              [--deadline SECONDS] [--skip-build] [--also-build STEP[,STEP...]]
#   plans: correctness = gpu-small engine-dispatch parity-peft parity-cuda gpu-large memcheck racecheck parity-cpu
#          speed       = bench-attention bench-kernels bench-train (sequence 2048 only) bench-engine
#          all         = both, cpu-tests, and bench-train over sequences 512..8192 (default)
#   group names for --only: gpu-tests (gpu-small,engine-dispatch,gpu-large), parity (the three), bench (attention, kernels, engine)
#   --also-build: after the steps, with the time left, build these steps'
#   binaries too, so a second call can run them with --skip-build at once.
# Environment: BUILD_DIR (default build-gpu), JOBS, PYTHON (default python3),
# OFFLINE_DEPS (default <repo>/offline-deps), CUDA_ARCHS (default: this GPU's,
# else 80;90a), TRAIN_SEQS (bench-train sequence lengths).
set -uo pipefail

start_s=$(date +%s)
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-gpu}
jobs=${JOBS:-$(nproc)}
python=${PYTHON:-python3}
export PYTHON=$python  # the benchmark scripts' interpreter too
deps=${OFFLINE_DEPS:-$root/offline-deps}
logs=$build/verify
skip_build=0
plan=all
only=""
also_build=""
deadline=0
usage() {
  echo "usage: scripts/gpu-verify.sh [--plan correctness|speed|all] [--only STEP[,STEP...]] [--deadline SECONDS] [--skip-build] [--also-build STEP[,STEP...]]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --skip-build) skip_build=1 ;;
    --only) [ $# -ge 2 ] || usage; only=$2; shift ;;
    --also-build) [ $# -ge 2 ] || usage; also_build=$2; shift ;;
    --plan) [ $# -ge 2 ] || usage; plan=$2; shift ;;
    --deadline) [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || usage; deadline=$2; shift ;;
    *) usage ;;
  esac
  shift
done

# The quick GPU proofs first: the small kernel tests and the engine's use of
# them, then training and logits
# against transformers/PEFT, then the large shapes and the sanitizers; the
# CPU-only parity last.
correctness="gpu-small engine-dispatch parity-peft parity-cuda gpu-large memcheck racecheck parity-cpu"
speed="bench-attention bench-kernels bench-train bench-engine"
case $plan in
  correctness) steps=$correctness; train_seqs=${TRAIN_SEQS:-2048} ;;
  speed) steps=$speed; train_seqs=${TRAIN_SEQS:-2048} ;;
  all) steps="$correctness cpu-tests $speed"; train_seqs=${TRAIN_SEQS:-512 1024 2048 4096 8192} ;;
  *) usage ;;
esac
all_steps="$correctness cpu-tests $speed"
# A --only/--also-build list with its groups expanded: ",a,b,".
expand_steps() {
  echo ",$1," | sed -e 's/,gpu-tests,/,gpu-small,engine-dispatch,gpu-large,/' \
    -e 's/,parity,/,parity-peft,parity-cuda,parity-cpu,/' -e 's/,bench,/,bench-attention,bench-kernels,bench-engine,/'
}
# Its steps in priority order (the list checked first, in this shell, so an
# unknown name stops the script).
pick_steps() {
  local expanded s
  expanded=$(expand_steps "$1")
  for s in $(echo "$expanded" | tr ',' ' '); do
    [[ " $all_steps " == *" $s "* ]] || { echo "gpu-verify: unknown step '$s'" >&2; usage; }
  done
  picked=$(for s in $all_steps; do [[ $expanded == *",$s,"* ]] && echo -n "$s "; done)
}
later_steps=""
if [ -n "$also_build" ]; then pick_steps "$also_build"; later_steps=$picked; fi
if [ -n "$only" ]; then
  pick_steps "$only"
  steps=$picked
  # A step picked by name runs as in a short plan: the full trainer sweep
  # (8B at 8192 tokens on both sides) only with --plan all and no --only.
  train_seqs=${TRAIN_SEQS:-2048}
fi
wanted() { [[ " $steps " == *" $1 "* ]]; }

# Per-step caps under --deadline (seconds): generous for a correct build, so
# that a hang in one step cannot eat the time of the steps after it.
declare -A cap=([configure]=240 [build]=480 [build-later]=480 [gpu-small]=150 [engine-dispatch]=180 [gpu-large]=240 [parity-peft]=240
                [parity-cuda]=150 [parity-cpu]=150 [memcheck]=180 [racecheck]=240 [cpu-tests]=400
                [bench-attention]=150 [bench-kernels]=300 [bench-train]=540 [bench-engine]=300)
reserve_s=10  # kept back at the deadline to write the summary and the tarball

export PYTHONUNBUFFERED=1  # the parity scripts' lines reach their logs as they print
# The bundle travels compressed (scripts/bundle-offline-deps.sh writes both).
# tar needs the xz program, which a minimal host may lack: Python's lzma then.
if [[ ! -d $deps && -f $deps.tar.xz ]]; then
  if ! tar -C "$(dirname "$deps")" -xJf "$deps.tar.xz" 2>/dev/null; then
    rm -rf "$deps"
    "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$deps.tar.xz" "$(dirname "$deps")" || { echo "gpu-verify: cannot unpack $deps.tar.xz" >&2; exit 1; }
  fi
fi
if [ -n "${CUDA_ARCHS:-}" ]; then
  archs=$CUDA_ARCHS
else
  # This GPU's compute capability (9.0 -> 90a for the Hopper instructions).
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)
  # No nvidia-smi (a container without the utility capability): ask torch.
  [ -n "$cc" ] || cc=$("$python" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability())' 2>/dev/null || true)
  case $cc in
    90) archs=90a ;;
    [0-9][0-9] | [0-9][0-9][0-9]) archs=$cc ;;
    *) archs="80;90a" ;;
  esac
fi

mkdir -p "$logs"
rm -f "$logs"/*.log "$logs/summary.txt"
summary=()
failed=0
elapsed() { echo $(($(date +%s) - start_s)); }
record() {  # record NAME STATUS DETAIL
  summary+=("$(printf '%-16s %-8s %s' "$1" "$2" "$3")")
  [ "$2" = PASS ] || failed=1
}
write_summary() {
  {
    echo "gpu-verify summary ($(head -1 "$logs/host.txt"); plan $plan; ${deadline:+deadline ${deadline}s; }$(elapsed)s elapsed)"
    printf '%s\n' "${summary[@]}"
  } >"$logs/summary.txt"
  if [ -n "${OUT:-}" ]; then
    # The device tool returns at most 8 files: the summary and one tarball.
    cp "$logs/summary.txt" "$OUT/summary.txt"
    local results=()
    while IFS= read -r f; do results+=("${f#"$root"/}"); done < <(find "$root/benchmarks/results" -type f -newer "$logs/host.txt" 2>/dev/null)
    tar -C "$root" -czf "$OUT/gpu-verify.tar.gz.tmp" "${logs#"$root"/}" "${results[@]}" 2>/dev/null &&
      mv "$OUT/gpu-verify.tar.gz.tmp" "$OUT/gpu-verify.tar.gz"
  fi
}
# Seconds step $1 may run: its cap, bounded by what is left before the
# deadline; 0 when it should not start. Without --deadline, unbounded.
budget_for() {
  if [ "$deadline" = 0 ]; then echo unbounded; return; fi
  local left=$((deadline - $(elapsed) - reserve_s)) c=${cap[$1]:-120}
  if [ $left -lt 20 ]; then echo 0; elif [ $left -lt $c ]; then echo $left; else echo $c; fi
}
run_step() {  # run_step NAME COMMAND... ; output to $logs/NAME.log
  local name=$1 log=$logs/$1.log budget rc t0
  shift
  budget=$(budget_for "$name")
  if [ "$budget" = 0 ]; then
    record "$name" NOT-RUN "no time left before the ${deadline}s deadline"
    write_summary
    return 1
  fi
  echo "== $name ($(elapsed)s, budget $budget): $*" >&2
  t0=$(date +%s)
  if [ "$budget" = unbounded ]; then "$@" >"$log" 2>&1; else timeout -k 10 "$budget" "$@" >"$log" 2>&1; fi
  rc=$?
  local took="$(($(date +%s) - t0))s"
  if [ $rc = 0 ]; then
    record "$name" PASS "$took  ${log#"$root"/}"
  elif [ $rc = 124 ] || [ $rc = 137 ]; then
    record "$name" TIMEOUT "killed after $took  ${log#"$root"/}"
    tail -20 "$log" >&2
  else
    record "$name" FAIL "exit $rc after $took  ${log#"$root"/}"
    tail -20 "$log" >&2
  fi
  write_summary
  return $rc
}

# ---- host facts -----------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname) ($(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"))"
  echo "glibc: $(ldd --version 2>/dev/null | head -1)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  # The binaries link the toolkit's libcudart/libcublas (found first through
  # their RPATH, and then used by libtorch too, having the same soname): a
  # toolkit older than the CUDA torch was built with can lack symbols libtorch
  # calls ("symbol lookup error" in every step).
  nvcc_cuda=$(nvcc --version 2>/dev/null | grep -oE 'release [0-9]+\.[0-9]+' | cut -d' ' -f2)
  # One interpreter start for every Python fact (importing torch takes seconds).
  py_facts=$("$python" - <<'PY' 2>&1
import os
try:
    import torch
    print("torch_cuda:", torch.version.cuda or "")
    print("torch:", torch.__version__, "cuda", torch.version.cuda, "cxx11abi", torch.compiled_with_cxx11_abi())
except Exception as e:
    print("torch: not importable:", e)
try:
    # c10d: the NCCL torch was built with (the configure log names the nccl.h
    # used) and whether the wheel carries gloo headers.
    print("torch nccl:", torch.cuda.nccl.version(), "gloo headers in wheel:",
          os.path.exists(os.path.join(os.path.dirname(torch.__file__), "include/gloo/config.h")))
except Exception as e:
    print("torch nccl: none:", e)
try:
    import transformers, peft
    print("transformers:", transformers.__version__, "peft:", peft.__version__)
except Exception as e:
    print("transformers/peft: not importable:", e)
PY
)
  torch_cuda=$(sed -n 's/^torch_cuda: //p' <<<"$py_facts")
  if [ -n "$nvcc_cuda" ] && [ -n "$torch_cuda" ] &&
     [ "$(printf '%s\n%s\n' "$nvcc_cuda" "$torch_cuda" | sort -V | head -1)" != "$torch_cuda" ]; then
    echo "WARNING: nvcc is CUDA $nvcc_cuda, older than torch's CUDA $torch_cuda: point PATH/CUDA_HOME at a toolkit >= $torch_cuda if steps fail with symbol lookup errors"
  fi
  echo "cmake: $(cmake --version | head -1)"
  grep -v '^torch_cuda: ' <<<"$py_facts"
  echo "git: $(git -C "$root" rev-parse HEAD 2>/dev/null) $(git -C "$root" status --porcelain 2>/dev/null | wc -l) modified"
  echo "plan: $plan; steps: $steps; CUDA archs: $archs; jobs: $jobs"
  [ -f "$deps/MANIFEST" ] && { echo "offline deps:"; sed 's/^/  /' "$deps/MANIFEST"; }
} | tee "$logs/host.txt" >&2

# ---- configure and build ----------------------------------------------------
targets_for() {  # the build targets of steps $1, one per line
  local out=() s
  for s in $1; do
    case $s in
      gpu-small|engine-dispatch|gpu-large|memcheck|racecheck) out+=(test_kernels) ;;
      parity-*) out+=(synthpert) ;;
      bench-attention) out+=(bench_attention) ;;
      bench-kernels) out+=(bench_kernels) ;;
      bench-train) out+=(synthpert bench_train) ;;
      bench-engine) out+=(synthpert bench_engine) ;;
      cpu-tests) out+=(all) ;;
    esac
  done
  if [[ " ${out[*]} " == *" all "* ]]; then echo all; else printf '%s\n' "${out[@]}" | sort -u; fi
}
mapfile -t targets < <(targets_for "$steps")
mapfile -t later_targets < <(targets_for "$later_steps")

if [ $skip_build = 0 ]; then
  torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') || {
    echo "gpu-verify: $python cannot import torch" >&2; exit 1; }
  prefix_path="$torch_prefix"
  cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DSYNTHPERT_KERNELS=ON -DSYNTHPERT_BUILD_BENCHMARKS=ON
              "-DSYNTHPERT_CUDA_ARCHS=$archs" "-DCMAKE_CUDA_COMPILER=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
              # The CPU suites' python oracles run on this host's python (with torch), not Debian's.
              "-DSYNTHPERT_REFERENCE_PYTHON=$(command -v "$python" || echo "$python")")
  # libtorch's CMake config stops when it cannot find the cuDNN it was built
  # with; the wheel's own (nvidia.cudnn) is that one.
  cudnn_dir=$("$python" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null)
  cudnn_lib=$(ls "$cudnn_dir"/lib/libcudnn.so* 2>/dev/null | head -1)
  if [ -n "$cudnn_dir" ] && [ -f "$cudnn_dir/include/cudnn.h" ] && [ -n "$cudnn_lib" ]; then
    cmake_args+=("-DCUDNN_INCLUDE_PATH=$cudnn_dir/include" "-DCUDNN_LIBRARY_PATH=$cudnn_lib")
    echo "cudnn: $cudnn_lib" >>"$logs/host.txt"
  fi
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
  if ! run_step configure cmake -S "$root" -B "$build" "${cmake_args[@]}" "-DCMAKE_PREFIX_PATH=$prefix_path"; then
    exit 1
  fi
  if ! grep -q "CUDA engine ON" "$logs/configure.log"; then
    # Every step would then run a CPU engine and fail slowly: stop here.
    echo "gpu-verify: the configure did not enable the CUDA engine (libtorch without CUDA?)" >&2
    record cuda-engine FAIL "configure did not report 'CUDA engine ON'"
    write_summary
    exit 1
  fi
  # -k 0: build every target that can be built, so one compile error leaves
  # the other steps their binaries.
  run_step build cmake --build "$build" -j "$jobs" --target "${targets[@]}" -- -k 0
  # Which CUDA, cuBLAS, NCCL and torch libraries the binaries resolve (the
  # toolkit's or the wheel's: the same sonames, perhaps not the same builds).
  for b in tests/kernels/test_kernels synthpert; do
    [ -x "$build/$b" ] || continue
    echo "libraries of $b:"
    ldd "$build/$b" | grep -E 'cuda|cublas|nccl|torch|c10' | sed 's/^[[:space:]]*/  /'
  done >>"$logs/host.txt" 2>&1
fi

# ---- steps, in priority order ---------------------------------------------
kernel_tests=$build/tests/kernels/test_kernels
sanitizer=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
export SANITIZER=$sanitizer  # scripts/sanitize-kernels.sh's
have_py() { "$python" -c "import $1" 2>/dev/null; }
gpu_suite() {  # gpu_suite NAME FILTER [RUNNER]: the kernel test binary; "skipped" (77) fails here
  local name=$1
  if [ -n "${3:-}" ]; then
    # One process per test case; a filter matching nothing fails there too.
    run_step "$name" "$3" "$kernel_tests" "$2" --durations yes
  else
    # -w NoTests: a filter that matches nothing (a renamed tag) fails.
    run_step "$name" "$kernel_tests" "$2" --durations yes -w NoTests
  fi
  if grep -q "skipped: no CUDA device" "$logs/$name.log" 2>/dev/null; then
    record "$name-device" FAIL "the GPU suite found no usable CUDA device"
  fi
}
for s in $steps; do
  case $s in
    # The engine's cases load a CUDA libtorch: a crash there must not leave the
    # kernels' own cases unrun, so they run apart, one process per case.
    gpu-small) gpu_suite gpu-small "[gpu]~[large]~[engine_dispatch]" ;;
    engine-dispatch) gpu_suite engine-dispatch "[gpu][engine_dispatch]" "$root/scripts/run-tests-isolated.sh" ;;
    gpu-large) gpu_suite gpu-large "[gpu][large]" ;;
    parity-peft)
      if have_py peft && have_py transformers; then
        run_step parity-peft "$python" "$root/tests/reference/peft_parity.py" --build "$build" --device cuda
      else record parity-peft FAIL "transformers or peft not importable by $python"; fi ;;
    parity-cuda|parity-cpu)
      if have_py transformers; then
        run_step "$s" "$python" "$root/tests/reference/hf_parity.py" --synthpert "$build/synthpert" \
          --device "${s#parity-}" --out "$logs/$s.json"
      else record "$s" FAIL "transformers not importable by $python"; fi ;;
    memcheck|racecheck)
      if [ -x "$sanitizer" ]; then
        # The kernels' own small cases; the engine-dispatch cases would mostly
        # instrument libtorch's CUDA start-up.
        run_step "$s" "$root/scripts/sanitize-kernels.sh" "$s" "$kernel_tests" "[gpu]~[large]~[engine_dispatch]" -w NoTests
      else record "$s" FAIL "compute-sanitizer not found (PATH or $sanitizer)"; fi ;;
    cpu-tests) run_step cpu-tests ctest --test-dir "$build" -LE gpu --output-on-failure -j "$jobs" ;;
    bench-attention) run_step bench-attention "$build/benchmarks/bench_attention" --python "$python" ;;
    bench-kernels) run_step bench-kernels "$build/benchmarks/bench_kernels" --python "$python" ;;
    bench-train) run_step bench-train env SEQS="$train_seqs" "$root/benchmarks/run_train_gpu.sh" "$build" ;;
    bench-engine) run_step bench-engine "$root/benchmarks/run_engine_gpu.sh" "$build" ;;
  esac
done

# The binaries a later call will need, built with the time left (its
# --skip-build then starts its steps at once).
if [ $skip_build = 0 ] && [ ${#later_targets[@]} -gt 0 ] && [ -n "${later_targets[0]}" ]; then
  run_step build-later cmake --build "$build" -j "$jobs" --target "${later_targets[@]}" -- -k 0
fi

write_summary
echo >&2
cat "$logs/summary.txt" >&2
[ -n "${OUT:-}" ] && echo "gpu-verify: summary.txt and gpu-verify.tar.gz written to $OUT" >&2
exit $failed
