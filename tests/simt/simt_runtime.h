// A host emulation of the CUDA execution model, so that the device code of
// kernels/ runs on a machine without a GPU: every CUDA thread of a block is a
// fiber on the launching thread, the blocks of a grid run one after another,
// __shared__ variables are function statics (one block at a time owns them),
// and __syncthreads and the warp shuffles are barriers among the threads they
// name. Launches are synchronous.
//
// What it checks that a reference comparison alone would not: the kernels'
// index arithmetic, reductions and barrier structure on the compiled code
// itself. A barrier that not every live thread reaches, or a shuffle whose
// mask names a lane that has exited, fails the launch with a message instead
// of hanging. Built with AddressSanitizer (tests/simt/CMakeLists.txt), an
// access outside a buffer from cudaMalloc or outside a __shared__ array is
// reported with the kernel's source line.
//
// Races: a fiber runs alone until its next barrier, so one run is one
// schedule (set_schedule picks between two). Built with ThreadSanitizer
// (SIMT_TSAN), each thread is a TSan fiber and the only happens-before edges
// inside a block are the kernel's barriers and shuffles, so a conflicting
// access pair no barrier orders is reported whichever schedule ran.
//
// What it cannot check: timing, occupancy, the device's fast-math rounding,
// and races between blocks (blocks run one after another and are ordered, as
// racecheck only looks inside a block). The sm_90a wgmma instructions run as
// the PTX ISA defines them (tests/simt/include/kernels/attention_wgmma_ptx.cuh);
// that the hardware agrees is for a GPU run to show.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace synthpert::simt {

// Emulation code whose memory accesses ThreadSanitizer does not record:
// arithmetic on the calling thread's own registers (locals of its fiber,
// which no other thread can reach), and the wgmma operands' reads at the
// wait, which one lane of each warp also makes recorded (see
// attention_wgmma_ptx.cuh). Recording them was most of a TSan run's time.
// GCC inlines no function without this attribute into one with it, so the
// helpers of such code carry it too.
#define SIMT_TSAN_UNRECORDED __attribute__((no_sanitize("thread")))

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

// The calling thread's place in the launch (what threadIdx and friends read).
struct ThreadPlace {
  Dim3 thread, block, block_dim, grid_dim;
};
const ThreadPlace& place();

// Thrown inside a kernel by __trap() and by a failed barrier check.
struct KernelFault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Block-wide barrier (__syncthreads).
void sync_threads();

// Named barriers (bar.sync / bar.arrive id, threads): barrier `id` (1 to 15;
// 0 is __syncthreads') completes once `threads` threads (a multiple of 32)
// have arrived by either form; bar.sync waits for that, bar.arrive does not.
// The arrivals of one completion must all name the same count. A thread's
// writes before either form are ordered before the reads of every thread
// that leaves a bar.sync of the same completion.
void named_barrier_sync(int id, int threads);
void named_barrier_arrive(int id, int threads);

// mbarrier objects (PTX ISA "mbarrier"; 8 bytes of dynamic shared memory,
// 8-byte aligned): init sets the arrivals each phase expects; an arrive
// counts one, with release semantics; the arrival that makes the count
// completes the phase and starts the next. wait_parity(parity) returns once
// the phase of that parity has completed, that is while the current phase's
// parity differs (the ISA's try_wait.parity names the current or the
// immediately preceding phase), and acquires that phase's arrivals.
void mbarrier_init(void* bar, unsigned count);
void mbarrier_arrive(void* bar);
void mbarrier_wait_parity(void* bar, unsigned parity);
// Transaction counts (the ISA's tx-count, which bulk copies such as
// cp.async.bulk.tensor report to): arrive_expect_tx adds `bytes` to the
// current phase's count, then arrives; complete_tx takes `bytes` off it, with
// release semantics for the caller's writes (the emulated copy's). A phase
// completes once its arrivals are in and its tx-count is back at zero. An
// arrival on a phase that already has all of its arrivals (its bytes still
// missing) fails the launch.
void mbarrier_arrive_expect_tx(void* bar, unsigned bytes);
void mbarrier_complete_tx(void* bar, unsigned bytes);

// Exchanges `bytes` bytes among the lanes of the caller's warp named in
// `mask`: the caller's value goes in, the value of lane `src_lane` comes out.
// Every lane in mask must reach the same call.
void warp_exchange(unsigned mask, const void* in, void* out, size_t bytes, int src_lane);

// Every lane of the caller's (full) warp puts `bytes` bytes in; `out` gets
// all 32 lanes' bytes, lane after lane. For warp-wide instructions (mma,
// ldmatrix) whose result depends on the registers of other lanes.
void warp_gather(const void* in, size_t bytes, void* out);

// cp.async: the copy happens when a later async_wait retires its group (or
// when the thread returns), so a read before the wait sees the old bytes.
void async_copy(void* dst, const void* src, size_t bytes);
void async_commit();
void async_wait(int pending_groups);

// The launch's dynamic shared memory (the launch's third argument, in bytes).
// It starts 16 bytes into a 256 KiB-aligned window (shared_window), so a
// kernel that needs more alignment than CUDA promises has to make it.
void* dynamic_shared();

// The emulated shared address space: a shared address (what smem_addr gives,
// and the 18-bit start address of a wgmma descriptor) is an offset in it.
unsigned char* shared_window();
constexpr size_t kSharedWindowBytes = size_t(1) << 18;

// Faults unless [p, p + bytes) lies inside the launch's dynamic shared memory.
void require_dynamic_shared(const void* p, size_t bytes, const char* what);

// wgmma.mma_async (sm_90a) is asynchronous: the emulation queues each issued
// operation and runs it when wgmma_wait retires its group, so its operands
// are read, and its accumulators written, as late as the hardware may.
// wgmma_issue faults unless the thread executed wgmma_fence since its last
// wait (PTX ISA: registers touched between wgmma groups need the fence), and
// a thread that returns with operations in flight fails the launch. The
// thread's accumulators must not change between the issue and the wait (the
// wait faults if they did). The four instructions are .aligned: every thread
// of a warpgroup (128 threads, four whole warps) must execute the same
// sequence of them, with the same descriptors: at the end of the block, a
// thread whose sequence differs from its warpgroup's first thread's fails
// the launch.
struct WgmmaIssue {
  uint64_t desc_a = 0, desc_b = 0;  // shared-memory descriptors (desc_a 0: A in registers)
  float* accumulators = nullptr;    // the thread's D registers
  size_t count = 0;
  std::function<void()> run;  // the operation, run at the wait that retires it
};
void wgmma_fence();
void wgmma_issue(WgmmaIssue issue);
void wgmma_commit();
void wgmma_wait(int pending_groups);

// fence.proxy.async: the caller's cp.async copies that have landed become
// visible to the async proxy (wgmma operand reads). require_async_visible
// faults if bytes in [p, p + bytes) were written by a cp.async of some thread
// of the block that has not fenced since.
void fence_proxy_async();
void require_async_visible(const void* p, size_t bytes);

// Runs `body` once per thread of every block; returns an empty string or the
// first fault of the launch. `kernel` (the __global__ function) is only an
// identity, for its dynamic shared memory limit.
using KernelBody = void (*)(void* closure);
std::string run_grid(const void* kernel, Dim3 grid, Dim3 block, size_t dynamic_smem, KernelBody body,
                     void* closure);

// A kernel may launch with at most 48 KiB of dynamic shared memory until
// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n)
// raises its limit to n (at most the device's opt-in 227 KiB), as on the
// device; a launch over the limit fails. (The device also counts the
// kernel's static shared memory against the limit; the emulation cannot see
// static sizes, so that part is not checked.)
constexpr size_t kDefaultDynamicSharedLimit = 48 * 1024;
constexpr size_t kOptInSharedLimit = 227 * 1024;
void set_dynamic_shared_limit(const void* kernel, size_t bytes);
size_t dynamic_shared_limit(const void* kernel);

// The order in which a block's fibers are run in each round: thread 0 first,
// or the last thread first. A kernel missing a barrier can read a value
// before or after another warp writes it depending on the order; running the
// tests under both (SIMT_SCHEDULE=reverse in the environment, or this call)
// exposes more such races than one order does.
enum class Schedule { kForward, kReverse };
void set_schedule(Schedule s);

// The CUDA runtime's sticky launch error, read by cudaGetLastError.
void record_launch_error(const std::string& message);
std::string take_launch_error();
bool has_launch_error();

template <typename D>
Dim3 to_dim3(const D& d) {
  if constexpr (std::is_integral_v<D>) {
    return Dim3{unsigned(d), 1, 1};
  } else {  // dim3
    return Dim3{d.x, d.y, d.z};
  }
}

// kernel<<<grid, block, smem, stream>>>(args...) is rewritten to
// launch(kernel, grid, block, smem, stream)(args...) by translate_launches.py.
template <typename... Params>
struct Launch {
  void (*kernel)(Params...);
  Dim3 grid, block;
  size_t smem;

  template <typename... Args>
  void operator()(Args&&... args) const {
    struct Closure {
      void (*kernel)(Params...);
      std::tuple<std::decay_t<Params>...> values;
    };
    // Arguments are copied once, as the launch copies them to the device.
    Closure c{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
    const std::string fault = run_grid(
        reinterpret_cast<const void*>(kernel), grid, block, smem,
        [](void* p) {
          auto* cl = static_cast<Closure*>(p);
          std::apply([&](const auto&... v) { cl->kernel(v...); }, cl->values);
        },
        &c);
    if (!fault.empty()) record_launch_error(fault);
  }
};

template <typename... Params, typename G, typename B>
Launch<Params...> launch(void (*kernel)(Params...), const G& grid, const B& block, size_t smem = 0,
                         const void* /*stream*/ = nullptr) {
  return Launch<Params...>{kernel, to_dim3(grid), to_dim3(block), smem};
}

}  // namespace synthpert::simt
