// The block loop, fibers and barriers of the host CUDA emulation (see
// simt_runtime.h). Each CUDA thread of a block is a fiber (fiber_switch.h) on
// the launching thread, run round-robin: a fiber runs until it reaches a barrier
// or returns, so a barrier costs one context switch per thread, not an OS
// wake-up. A pass over the block in which no fiber can move is a deadlock.
#include "tests/simt/simt_runtime.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "tests/simt/fiber_switch.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
#else
#define SIMT_ASAN 0
#endif

// The ThreadSanitizer build (SIMT_TSAN; simt_runtime.h says what it orders)
// instruments the kernels but not this file, whose bookkeeping every fiber
// shares with no happens-before between them, on purpose.
#if defined(SIMT_TSAN)
#include <sanitizer/tsan_interface.h>
// libtsan exports these; GCC 12's header does not declare them.
extern "C" void __tsan_read_range_pc(void* addr, unsigned long size, void* pc);
extern "C" void __tsan_write_range_pc(void* addr, unsigned long size, void* pc);
#endif

#if defined(__x86_64__)
// synthpert_simt_switch(save_sp, load_sp): pushes the callee-saved registers
// and the MXCSR/x87 control words, saves sp, loads the other stack and pops
// the same (layout in fiber_prepare).
asm(R"(
  .text
  .globl synthpert_simt_switch
  .type synthpert_simt_switch, @function
synthpert_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size synthpert_simt_switch, .-synthpert_simt_switch
)");
#endif

namespace synthpert::simt {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpgroup = 4 * kWarp;
constexpr int kEveryLane = -1000;  // exchange_slots: the caller reads all lanes
constexpr size_t kSlotBytes = 64;  // the most one lane puts into a warp exchange
constexpr size_t kStackBytes = size_t(256) << 10;

// Happens-before edges for ThreadSanitizer; nothing in the other builds.
// A barrier generation g uses sync object g % 2: a thread can release into
// generation g + 2 only after every thread has acquired generation g.
inline void hb_release(void* sync) {
#if defined(SIMT_TSAN)
  __tsan_release(sync);
#else
  (void)sync;
#endif
}
inline void hb_acquire(void* sync) {
#if defined(SIMT_TSAN)
  __tsan_acquire(sync);
#else
  (void)sync;
#endif
}

// Copies the register values of a warp exchange. Under ThreadSanitizer,
// memcpy is intercepted and every byte recorded as an access, although these
// bytes are the lanes' registers (locals of the caller) and this file's own
// slots, which no kernel can reach; those records were most of a TSan run's
// time in the attention suites. A loop the compiler must not turn back into
// a memcpy call is not seen by the interceptor.
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void copy_register_bytes(void* dst, const void* src,
                                                                                       size_t bytes) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < bytes; ++i) d[i] = s[i];
}

// Unwinds a fiber out of its kernel once the launch has failed.
struct Aborted {};

struct AsyncCopy {
  void* dst;
  const void* src;
  size_t bytes;
};

// Bytes a thread's cp.async copies wrote (landed) since its last
// fence.proxy.async: not yet visible to wgmma operand reads.
using ByteRange = std::pair<const unsigned char*, size_t>;

// An accumulator array with wgmma operations in flight: the contents it must
// still hold when the oldest of them runs, and how many are in flight.
struct InFlightAccumulators {
  float* at;
  std::vector<float> expected;
  int operations;
};

// One .aligned wgmma instruction as a warpgroup's threads must all execute it.
struct WgmmaStep {
  enum Kind : uint8_t { kFence, kMma, kCommit, kWait } kind;
  uint64_t a = 0, b = 0;  // kMma: descriptors; kWait: the pending count in a
  size_t accumulators = 0;  // kMma: D registers per thread (the instruction's N)
  bool operator==(const WgmmaStep& o) const {
    return kind == o.kind && a == o.a && b == o.b && accumulators == o.accumulators;
  }
};
const char* step_name(WgmmaStep::Kind k) {
  switch (k) {
    case WgmmaStep::kFence: return "wgmma.fence";
    case WgmmaStep::kMma: return "wgmma.mma_async";
    case WgmmaStep::kCommit: return "wgmma.commit_group";
    case WgmmaStep::kWait: return "wgmma.wait_group";
  }
  return "?";
}

struct Fiber {
  FiberContext ctx;
  void* stack = nullptr;
  ThreadPlace place;
  int linear = 0;
  bool done = false;
  // What the fiber is parked at, until it is released (see released()):
  // which barrier, warp, named barrier or mbarrier, and the generation (the
  // parity, for an mbarrier) it waits to see pass.
  enum class Wait : uint8_t { kNone, kBlock, kWarp, kNamed, kMbarrier } waiting = Wait::kNone;
  size_t waiting_index = 0;
  uint64_t waiting_gen = 0;
  void* fake_stack = nullptr;  // AddressSanitizer's, while switched out
  void* tsan_fiber = nullptr;  // ThreadSanitizer's context for this thread
  // cp.async copies: the open group, then committed groups, oldest first.
  std::vector<AsyncCopy> open_copies;
  std::vector<std::vector<AsyncCopy>> committed_copies;
  std::vector<ByteRange> unfenced_copies;
  // wgmma operations: those issued since the last commit, then committed
  // groups, oldest first; whether a wgmma.fence came after the last wait.
  std::vector<WgmmaIssue> open_wgmma;
  std::vector<std::vector<WgmmaIssue>> committed_wgmma;
  bool wgmma_fenced = false;
  std::vector<InFlightAccumulators> wgmma_accumulators;
  // The .aligned wgmma instructions the thread executed in this block, in
  // order (compared across its warpgroup when the block ends). Kept per
  // thread: a log shared by fibers would be allocated by one and freed by
  // another, a race to ThreadSanitizer with no barrier to order it.
  std::vector<WgmmaStep> wgmma_steps;
};

// A named barrier (bar.sync / bar.arrive with an id): the thread count its
// current completion expects (0 while nobody has arrived), the arrivals so far.
struct NamedBarrier {
  int expected = 0;
  int arrived = 0;
  uint64_t gen = 0;
  char hb_sync[2] = {};  // see hb_release
};
constexpr int kNamedBarriers = 16;  // ids 1..15; 0 is __syncthreads'

// An mbarrier object, found by its shared-memory address: the arrivals a
// phase expects, those still missing from the current phase, the phase's
// number, and one ThreadSanitizer sync object per phase (a deque, so their
// addresses stay put): a wait acquires exactly the arrivals of the phase it
// saw complete.
struct Mbarrier {
  const void* at = nullptr;
  unsigned count = 0, pending = 0;
  int64_t tx = 0;  // the current phase's tx-count: bytes expected, not yet completed
  uint64_t phase = 0;
  std::deque<char> hb_phase;
};

struct WarpState {
  unsigned existing = 0;  // lanes the block has
  unsigned live = 0;      // lanes still in the kernel
  unsigned expected = 0;  // mask of the exchange in progress
  int arrived = 0;
  uint64_t gen = 0;
  char hb_sync[2] = {};  // see hb_release
  unsigned char slots[2][kWarp][kSlotBytes] = {};  // double-buffered by gen parity
};

// The launch's shared address space: kSharedWindowBytes, aligned to its size
// so that address bits below 18 are the shared address. The dynamic shared
// memory starts kDynamicOffset bytes in (CUDA promises 16-byte alignment);
// under AddressSanitizer the rest of the window is poisoned.
constexpr size_t kDynamicOffset = 16;
struct SharedWindow {
  unsigned char* base = nullptr;
  size_t dynamic_bytes = 0;
  SharedWindow() = default;
  SharedWindow(const SharedWindow&) = delete;
  SharedWindow& operator=(const SharedWindow&) = delete;
  ~SharedWindow() {
    if (!base) return;
#if SIMT_ASAN
    __asan_unpoison_memory_region(base, kSharedWindowBytes);
#endif
    std::free(base);
  }
  bool allocate(size_t bytes) {
    base = static_cast<unsigned char*>(std::aligned_alloc(kSharedWindowBytes, kSharedWindowBytes));
    if (!base) return false;
    dynamic_bytes = bytes;
#if SIMT_ASAN
    __asan_poison_memory_region(base, kDynamicOffset);
    __asan_poison_memory_region(base + kDynamicOffset + bytes, kSharedWindowBytes - kDynamicOffset - bytes);
#endif
    return true;
  }
  unsigned char* dynamic() const { return base ? base + kDynamicOffset : nullptr; }
};

struct LaunchState {
  Dim3 grid, block;
  KernelBody body = nullptr;
  void* closure = nullptr;
  SharedWindow smem;
  std::vector<Fiber> fibers;
  std::vector<WarpState> warps;
  int live = 0;
  int bar_arrived = 0;
  uint64_t bar_gen = 0;
  char hb_bar[2] = {};                    // see hb_release
  NamedBarrier named[kNamedBarriers];
  std::vector<Mbarrier> mbarriers;            // of this block, in order of init
  char hb_block_begin = 0, hb_block_end = 0;  // the scheduler's writes before a block; the block's after
  bool failed = false;
  std::string fault;
  Dim3 current_block;

  FiberContext scheduler_ctx;
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_size = 0;
  void* scheduler_fake_stack = nullptr;
  void* scheduler_tsan_fiber = nullptr;

  std::string where() const {
    return "block (" + std::to_string(current_block.x) + "," + std::to_string(current_block.y) + "," +
           std::to_string(current_block.z) + ")";
  }
  void fail(const std::string& why) {
    if (!failed) {
      failed = true;
      fault = why;
    }
  }
};

thread_local LaunchState* tl_launch = nullptr;
thread_local Fiber* tl_fiber = nullptr;

// What a thread slot keeps across launches (made once, reused), so a launch
// costs no mmap: its stack and, under TSan, its fiber context.
struct ThreadSlot {
  void* stack = nullptr;
  void* tsan_fiber = nullptr;
};
std::vector<ThreadSlot>& slot_pool() {
  static std::vector<ThreadSlot> pool;
  return pool;
}

// Initialised from SIMT_SCHEDULE=reverse; see set_schedule.
Schedule initial_schedule() {
  const char* v = std::getenv("SIMT_SCHEDULE");
  return v && std::string(v) == "reverse" ? Schedule::kReverse : Schedule::kForward;
}
Schedule g_schedule = initial_schedule();

std::mutex g_launch_mutex;  // __shared__ statics allow one block at a time
std::mutex g_limits_mutex;
std::map<const void*, size_t> g_dynamic_shared_limits;  // set by cudaFuncSetAttribute
std::mutex g_error_mutex;
std::string g_launch_error;

// Switches from the running fiber back to the scheduler; `dying` when the
// fiber will not be resumed.
void switch_to_scheduler(LaunchState& l, Fiber& f, bool dying) {
#if SIMT_ASAN
  __sanitizer_start_switch_fiber(dying ? nullptr : &f.fake_stack, l.scheduler_stack, l.scheduler_stack_size);
#else
  (void)dying;
#endif
#if defined(SIMT_TSAN)
  __tsan_switch_to_fiber(l.scheduler_tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  fiber_switch(f.ctx, l.scheduler_ctx);
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, &l.scheduler_stack, &l.scheduler_stack_size);
#endif
}

void resume(LaunchState& l, Fiber& f) {
  tl_fiber = &f;
#if SIMT_ASAN
  __sanitizer_start_switch_fiber(&l.scheduler_fake_stack, f.stack, kStackBytes);
#endif
#if defined(SIMT_TSAN)
  __tsan_switch_to_fiber(f.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  fiber_switch(l.scheduler_ctx, f.ctx);
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(l.scheduler_fake_stack, nullptr, nullptr);
#endif
  tl_fiber = nullptr;
}

// Parks the running fiber until what it waits at moves past `gen`.
void block_on(LaunchState& l, Fiber& f, Fiber::Wait what, size_t index, uint64_t gen) {
  f.waiting = what;
  f.waiting_index = index;
  f.waiting_gen = gen;
  switch_to_scheduler(l, f, false);
  f.waiting = Fiber::Wait::kNone;
  if (l.failed) throw Aborted{};
}

bool released(const LaunchState& l, const Fiber& f) {
  switch (f.waiting) {
    case Fiber::Wait::kNone: return true;
    case Fiber::Wait::kBlock: return l.bar_gen != f.waiting_gen;
    case Fiber::Wait::kWarp: return l.warps[f.waiting_index].gen != f.waiting_gen;
    case Fiber::Wait::kNamed: return l.named[f.waiting_index].gen != f.waiting_gen;
    case Fiber::Wait::kMbarrier: return (l.mbarriers[f.waiting_index].phase & 1) != f.waiting_gen;
  }
  return true;
}

// Lands a group of cp.async copies of fiber f.
void complete(Fiber& f, std::vector<AsyncCopy>& group) {
  for (const AsyncCopy& c : group) {
    std::memcpy(c.dst, c.src, c.bytes);
    f.unfenced_copies.emplace_back(static_cast<const unsigned char*>(c.dst), c.bytes);
  }
  group.clear();
}

void fiber_exits(LaunchState& l, Fiber& f) {
  // The hardware finishes copies a thread never waited for.
  for (auto& group : f.committed_copies) complete(f, group);
  f.committed_copies.clear();
  complete(f, f.open_copies);
  // Accumulators of a wgmma never waited for are lost: a missing wait.
  if (!f.open_wgmma.empty() || !f.committed_wgmma.empty())
    l.fail("thread " + std::to_string(f.linear) + " of " + l.where() +
           " returned with wgmma operations in flight (no wgmma.wait_group retired them)");
  f.open_wgmma.clear();
  f.committed_wgmma.clear();
  f.wgmma_accumulators.clear();
  f.done = true;
  --l.live;
  WarpState& w = l.warps[size_t(f.linear / kWarp)];
  const unsigned bit = 1u << (f.linear % kWarp);
  w.live &= ~bit;
  if (w.arrived > 0 && (w.expected & bit))
    l.fail("lane " + std::to_string(f.linear % kWarp) + " of warp " + std::to_string(f.linear / kWarp) + " in " +
           l.where() + " returned while its warp waits at a shuffle whose mask names it");
  // Threads that have returned no longer count at __syncthreads, and their
  // writes are ordered before the barrier in progress.
  hb_release(&l.hb_bar[l.bar_gen & 1]);
  if (l.bar_arrived > 0 && l.bar_arrived == l.live) {
    l.bar_arrived = 0;
    ++l.bar_gen;
  }
  hb_release(&l.hb_block_end);
}

void fiber_entry() {
  LaunchState& l = *tl_launch;
  Fiber& f = *tl_fiber;
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &l.scheduler_stack, &l.scheduler_stack_size);
#endif
  hb_acquire(&l.hb_block_begin);
  try {
    l.body(l.closure);
  } catch (const Aborted&) {
  } catch (const std::exception& e) {
    l.fail(std::string(e.what()) + " (thread " + std::to_string(f.linear) + " of " + l.where() + ")");
  }
  fiber_exits(l, f);
  switch_to_scheduler(l, f, true);
}

// .aligned: every thread of a warpgroup executed the wgmma instructions its
// first thread did, in the same order with the same operands.
void check_warpgroups_aligned(LaunchState& l) {
  if (l.failed) return;
  for (const Fiber& f : l.fibers) {
    const Fiber& first = l.fibers[size_t(f.linear / kWarpgroup * kWarpgroup)];
    const std::vector<WgmmaStep>&mine = f.wgmma_steps, &theirs = first.wgmma_steps;
    if (mine == theirs) continue;
    const std::string who = "thread " + std::to_string(f.linear), ref = "thread " + std::to_string(first.linear);
    const size_t k = size_t(std::mismatch(mine.begin(), mine.end(), theirs.begin(), theirs.end()).first - mine.begin());
    std::string what;
    if (k == mine.size() || k == theirs.size()) {
      what = who + " executed " + std::to_string(mine.size()) + " wgmma instructions, " + ref + " " +
             std::to_string(theirs.size());
    } else {
      what = "wgmma instruction " + std::to_string(k) + " of " + who + " is a " + step_name(mine[k].kind) +
             (mine[k].kind == theirs[k].kind ? " with other operands than" : ", of") + " " + ref +
             (mine[k].kind == theirs[k].kind ? "'s" : " a " + std::string(step_name(theirs[k].kind)));
    }
    l.fail(what + " in " + l.where() + " (.aligned: every thread of a warpgroup executes the same instructions)");
    return;
  }
}

void run_block(LaunchState& l) {
  const int n = int(l.fibers.size());
  l.live = n;
  l.bar_arrived = 0;
  for (NamedBarrier& b : l.named) b = NamedBarrier{};
  l.mbarriers.clear();
  for (WarpState& w : l.warps) {
    w.live = w.existing;
    w.arrived = 0;
  }
  for (Fiber& f : l.fibers) {
    f.place.block = l.current_block;
    f.done = false;
    f.waiting = Fiber::Wait::kNone;
    f.fake_stack = nullptr;
    f.open_copies.clear();
    f.committed_copies.clear();
    f.unfenced_copies.clear();
    f.open_wgmma.clear();
    f.committed_wgmma.clear();
    f.wgmma_fenced = false;
    f.wgmma_accumulators.clear();
    f.wgmma_steps.clear();
#if SIMT_ASAN
    // The last thread on this stack never returned from fiber_entry, whose frame may still be poisoned.
    __asan_unpoison_memory_region(f.stack, kStackBytes);
#endif
    fiber_prepare(f.ctx, f.stack, kStackBytes, fiber_entry);
  }
  hb_release(&l.hb_block_begin);
  int remaining = n;
  while (remaining > 0 && !l.failed) {
    bool moved = false;
    for (int k = 0; k < n; ++k) {
      Fiber& f = l.fibers[size_t(g_schedule == Schedule::kReverse ? n - 1 - k : k)];
      if (f.done || !released(l, f)) continue;
      resume(l, f);
      moved = true;
      if (f.done) --remaining;
      if (l.failed) break;
    }
    if (!moved && !l.failed)
      l.fail("deadlock in " + l.where() + ": all " + std::to_string(l.live) +
             " live threads wait at barriers that cannot complete (a __syncthreads, warp shuffle or named barrier "
             "not reached by every thread it names, or an mbarrier phase that misses arrivals)");
  }
  // A failed launch leaves threads parked at barriers (a thread that has not
  // started is not parked): resumed, they unwind (block_on throws), so their
  // frames are destroyed and they exit as the others did.
  if (l.failed)
    for (Fiber& f : l.fibers)
      if (f.waiting != Fiber::Wait::kNone) resume(l, f);
  check_warpgroups_aligned(l);
  hb_acquire(&l.hb_block_end);
}

LaunchState& current_launch() {
  if (!tl_launch || !tl_fiber) throw std::logic_error("simt: a device builtin was used outside a kernel launch");
  return *tl_launch;
}

}  // namespace

void set_schedule(Schedule s) { g_schedule = s; }

const ThreadPlace& place() {
  static const ThreadPlace outside;
  return tl_fiber ? tl_fiber->place : outside;
}

void* dynamic_shared() { return current_launch().smem.dynamic(); }

unsigned char* shared_window() { return current_launch().smem.base; }

void require_dynamic_shared(const void* p, size_t bytes, const char* what) {
  const SharedWindow& w = current_launch().smem;
  const auto* b = static_cast<const unsigned char*>(p);
  if (!w.base || b < w.dynamic() || b + bytes > w.dynamic() + w.dynamic_bytes)
    throw KernelFault(std::string(what) + ": shared address " +
                      std::to_string(reinterpret_cast<uintptr_t>(b) - reinterpret_cast<uintptr_t>(w.base)) +
                      " (+" + std::to_string(bytes) + " bytes) is outside the launch's dynamic shared memory [" +
                      std::to_string(kDynamicOffset) + ", " + std::to_string(kDynamicOffset + w.dynamic_bytes) + ")");
}

void sync_threads() {
  LaunchState& l = current_launch();
  Fiber& f = *tl_fiber;
  if (l.failed) throw Aborted{};
  const uint64_t gen = l.bar_gen;
  hb_release(&l.hb_bar[gen & 1]);
  if (++l.bar_arrived == l.live) {
    l.bar_arrived = 0;
    ++l.bar_gen;
  } else {
    block_on(l, f, Fiber::Wait::kBlock, 0, gen);
  }
  hb_acquire(&l.hb_bar[gen & 1]);
}

namespace {

// Counts the caller at named barrier `id`, as bar.sync and bar.arrive do;
// returns the generation it arrived in (the barrier has moved past it when
// this arrival completed it).
uint64_t named_barrier_arrival(LaunchState& l, int id, int threads, const char* op) {
  if (l.failed) throw Aborted{};
  const int block_threads = int(l.fibers.size());
  if (id < 1 || id >= kNamedBarriers)
    throw KernelFault(std::string(op) + " " + std::to_string(id) + ": named barrier ids are 1 to " +
                      std::to_string(kNamedBarriers - 1) + " (0 is __syncthreads')");
  if (threads <= 0 || threads % kWarp != 0 || threads > block_threads)
    throw KernelFault(std::string(op) + " " + std::to_string(id) + ", " + std::to_string(threads) +
                      ": the thread count must be a positive multiple of 32, at most the block's " +
                      std::to_string(block_threads));
  NamedBarrier& b = l.named[id];
  if (b.arrived == 0) {
    b.expected = threads;
  } else if (b.expected != threads) {
    throw KernelFault(std::string(op) + " " + std::to_string(id) + " expects " + std::to_string(threads) +
                      " threads where earlier arrivals of the same completion said " + std::to_string(b.expected));
  }
  const uint64_t gen = b.gen;
  hb_release(&b.hb_sync[gen & 1]);
  if (++b.arrived == b.expected) {
    b.arrived = 0;
    ++b.gen;
  }
  return gen;
}

Mbarrier& find_mbarrier(LaunchState& l, const void* bar, const char* op) {
  for (Mbarrier& m : l.mbarriers)
    if (m.at == bar) return m;
  throw KernelFault(std::string(op) + " on shared address " +
                    std::to_string(reinterpret_cast<uintptr_t>(bar) - reinterpret_cast<uintptr_t>(l.smem.base)) +
                    ", which no mbarrier.init of this block initialised");
}

}  // namespace

void named_barrier_sync(int id, int threads) {
  LaunchState& l = current_launch();
  const uint64_t gen = named_barrier_arrival(l, id, threads, "bar.sync");
  NamedBarrier& b = l.named[id];
  if (b.gen == gen) block_on(l, *tl_fiber, Fiber::Wait::kNamed, size_t(id), gen);
  hb_acquire(&b.hb_sync[gen & 1]);
}

void named_barrier_arrive(int id, int threads) { named_barrier_arrival(current_launch(), id, threads, "bar.arrive"); }

void mbarrier_init(void* bar, unsigned count) {
  LaunchState& l = current_launch();
  require_dynamic_shared(bar, 8, "mbarrier.init");
  if (reinterpret_cast<uintptr_t>(bar) % 8 != 0)
    throw KernelFault("mbarrier.init: the object must be 8-byte aligned");
  if (count == 0 || count >= (1u << 20))
    throw KernelFault("mbarrier.init: the expected arrival count must be 1 to 2^20 - 1, got " +
                      std::to_string(count));
  for (const Mbarrier& m : l.mbarriers)
    if (m.at == bar) throw KernelFault("mbarrier.init of an mbarrier this block already initialised");
  Mbarrier m;
  m.at = bar;
  m.count = m.pending = count;
  m.hb_phase.emplace_back();
  l.mbarriers.push_back(std::move(m));
}

namespace {

// The phase completes once its arrivals are in and its tx-count is zero.
void complete_phase_if_done(Mbarrier& m) {
  if (m.pending != 0 || m.tx != 0) return;
  m.pending = m.count;
  ++m.phase;
  m.hb_phase.emplace_back();
}

void mbarrier_arrival(void* bar, int64_t expect_tx, const char* op) {
  LaunchState& l = current_launch();
  if (l.failed) throw Aborted{};
  Mbarrier& m = find_mbarrier(l, bar, op);
  if (m.pending == 0)
    throw KernelFault(std::string(op) + ": the phase already has its " + std::to_string(m.count) +
                      " arrivals and waits only for transaction bytes");
  hb_release(&m.hb_phase[m.phase]);
  m.tx += expect_tx;
  --m.pending;
  complete_phase_if_done(m);
}

}  // namespace

void mbarrier_arrive(void* bar) { mbarrier_arrival(bar, 0, "mbarrier.arrive"); }

void mbarrier_arrive_expect_tx(void* bar, unsigned bytes) {
  if (bytes >= (1u << 20))
    throw KernelFault("mbarrier.arrive.expect_tx: the tx-count must stay below 2^20, got " + std::to_string(bytes));
  mbarrier_arrival(bar, int64_t(bytes), "mbarrier.arrive.expect_tx");
}

void mbarrier_complete_tx(void* bar, unsigned bytes) {
  LaunchState& l = current_launch();
  if (l.failed) throw Aborted{};
  Mbarrier& m = find_mbarrier(l, bar, "complete_tx");
  hb_release(&m.hb_phase[m.phase]);
  m.tx -= int64_t(bytes);
  complete_phase_if_done(m);
}

void mbarrier_wait_parity(void* bar, unsigned parity) {
  LaunchState& l = current_launch();
  if (l.failed) throw Aborted{};
  Mbarrier& m = find_mbarrier(l, bar, "mbarrier.try_wait.parity");
  const size_t index = size_t(&m - l.mbarriers.data());
  if ((m.phase & 1) == (parity & 1)) block_on(l, *tl_fiber, Fiber::Wait::kMbarrier, index, parity & 1);
  // The phase seen complete is the latest one of that parity.
  Mbarrier& done = l.mbarriers[index];
  hb_acquire(&done.hb_phase[done.phase - 1]);
}

namespace {

// Puts the caller's bytes in its slot and returns the exchange's slots once
// every lane in mask has put its own; src_lane, the lane the caller will
// read (kEveryLane: all of them), must be in mask. The other buffer takes the next
// exchange, which cannot complete before this lane arrives there, so the
// slots stay intact while the caller reads them.
const unsigned char (*exchange_slots(unsigned mask, const void* in, size_t bytes, int src_lane))[kSlotBytes] {
  LaunchState& l = current_launch();
  Fiber& f = *tl_fiber;
  if (bytes > kSlotBytes) throw std::logic_error("simt: a warp exchange moves at most 64 bytes per lane");
  if (l.failed) throw Aborted{};
  const int lane = f.linear % kWarp, warp = f.linear / kWarp;
  WarpState& w = l.warps[size_t(warp)];
  auto fault = [&](const std::string& why) {
    l.fail("lane " + std::to_string(lane) + " of warp " + std::to_string(warp) + " in " + l.where() + ": " + why);
    throw Aborted{};
  };
  if (!(mask & (1u << lane))) fault("shuffle mask does not name the calling lane");
  if (mask & ~w.existing) fault("shuffle mask names lanes the block does not have");
  if (mask & ~w.live) fault("shuffle mask names a lane that has returned");
  if (src_lane != kEveryLane && (src_lane < 0 || src_lane >= kWarp || !(mask & (1u << src_lane))))
    fault("shuffle reads lane " + std::to_string(src_lane) + ", which the mask does not name");
  if (w.arrived == 0) {
    w.expected = mask;
  } else if (w.expected != mask) {
    fault("lanes of one warp shuffle with different masks");
  }
  const int buf = int(w.gen & 1);
  copy_register_bytes(w.slots[buf][lane], in, bytes);
  hb_release(&w.hb_sync[buf]);
  if (++w.arrived == __builtin_popcount(mask)) {
    w.arrived = 0;
    ++w.gen;
  } else {
    block_on(l, f, Fiber::Wait::kWarp, size_t(warp), w.gen);
  }
  hb_acquire(&w.hb_sync[buf]);
  return w.slots[buf];
}

}  // namespace

void warp_exchange(unsigned mask, const void* in, void* out, size_t bytes, int src_lane) {
  copy_register_bytes(out, exchange_slots(mask, in, bytes, src_lane)[src_lane], bytes);
}

void warp_gather(const void* in, size_t bytes, void* out) {
  const auto slots = exchange_slots(0xffffffffu, in, bytes, kEveryLane);
  for (int lane = 0; lane < kWarp; ++lane)
    copy_register_bytes(static_cast<unsigned char*>(out) + lane * bytes, slots[lane], bytes);
}

void async_copy(void* dst, const void* src, size_t bytes) {
  current_launch();
#if defined(SIMT_TSAN)
  // The copy may land at any moment until a wait retires it. Its accesses
  // are recorded now (without moving the bytes) and again by the copy at the
  // wait, so an access that no barrier orders against either end is a race.
  // Attributed to the kernel's line that issued it.
  void* const issuer = __builtin_return_address(0);
  __tsan_read_range_pc(const_cast<void*>(src), bytes, issuer);
  __tsan_write_range_pc(dst, bytes, issuer);
#endif
  tl_fiber->open_copies.push_back(AsyncCopy{dst, src, bytes});
}

namespace {
// commit_group, of cp.async copies or of wgmma operations: the open group
// joins the committed ones.
template <typename Op>
void commit_group(std::vector<Op>& open, std::vector<std::vector<Op>>& committed) {
  committed.push_back(std::move(open));
  open.clear();
}
}  // namespace

void async_commit() {
  current_launch();
  commit_group(tl_fiber->open_copies, tl_fiber->committed_copies);
}

void async_wait(int pending) {
  current_launch();
  Fiber& f = *tl_fiber;
  while (int(f.committed_copies.size()) > pending) {
    complete(f, f.committed_copies.front());
    f.committed_copies.erase(f.committed_copies.begin());
  }
}

void fence_proxy_async() {
  current_launch();
  tl_fiber->unfenced_copies.clear();
}

void require_async_visible(const void* p, size_t bytes) {
  const LaunchState& l = current_launch();
  const auto* lo = static_cast<const unsigned char*>(p);
  for (const Fiber& f : l.fibers)
    for (const ByteRange& r : f.unfenced_copies)
      if (r.first < lo + bytes && lo < r.first + r.second)
        throw KernelFault("wgmma reads shared memory that thread " + std::to_string(f.linear) +
                          " wrote by cp.async and has not made visible to the async proxy since "
                          "(fence.proxy.async missing)");
}

namespace {

// Logs the calling thread's next .aligned wgmma instruction (checked against
// its warpgroup's at the end of the block).
void wgmma_step(LaunchState& l, Fiber& f, const WgmmaStep& step) {
  if ((f.linear / kWarpgroup + 1) * kWarpgroup > int(l.fibers.size()))
    throw KernelFault(std::string(step_name(step.kind)) + " in a warpgroup of fewer than " +
                      std::to_string(kWarpgroup) + " threads (the block has " + std::to_string(l.fibers.size()) +
                      ")");
  f.wgmma_steps.push_back(step);
}

InFlightAccumulators* in_flight(Fiber& f, const float* at) {
  for (InFlightAccumulators& a : f.wgmma_accumulators)
    if (a.at == at) return &a;
  return nullptr;
}

// Runs one queued operation: its accumulators must hold what they held when
// it (or the operation before it on the same accumulators) was issued.
void run_wgmma(Fiber& f, WgmmaIssue& op) {
  InFlightAccumulators* acc = in_flight(f, op.accumulators);
  if (std::memcmp(acc->expected.data(), op.accumulators, op.count * sizeof(float)) != 0)
    throw KernelFault("wgmma: accumulators changed while a wgmma writing them was in flight");
  op.run();
  if (--acc->operations > 0) {
    std::memcpy(acc->expected.data(), op.accumulators, op.count * sizeof(float));
  } else {
    if (acc != &f.wgmma_accumulators.back()) *acc = std::move(f.wgmma_accumulators.back());
    f.wgmma_accumulators.pop_back();
  }
}

}  // namespace

void wgmma_fence() {
  LaunchState& l = current_launch();
  wgmma_step(l, *tl_fiber, WgmmaStep{WgmmaStep::kFence});
  tl_fiber->wgmma_fenced = true;
}

void wgmma_issue(WgmmaIssue issue) {
  LaunchState& l = current_launch();
  Fiber& f = *tl_fiber;
  wgmma_step(l, f, WgmmaStep{WgmmaStep::kMma, issue.desc_a, issue.desc_b, issue.count});
  if (!f.wgmma_fenced)
    throw KernelFault("wgmma.mma_async issued without a wgmma.fence since the thread's last wgmma.wait_group");
  if (InFlightAccumulators* acc = in_flight(f, issue.accumulators)) {
    if (acc->expected.size() != issue.count)
      throw KernelFault("wgmma: two operations in flight on the same accumulators differ in their shape");
    ++acc->operations;
  } else {
    f.wgmma_accumulators.push_back(InFlightAccumulators{
        issue.accumulators, std::vector<float>(issue.accumulators, issue.accumulators + issue.count), 1});
  }
  f.open_wgmma.push_back(std::move(issue));
}

void wgmma_commit() {
  LaunchState& l = current_launch();
  wgmma_step(l, *tl_fiber, WgmmaStep{WgmmaStep::kCommit});
  commit_group(tl_fiber->open_wgmma, tl_fiber->committed_wgmma);
}

void wgmma_wait(int pending) {
  LaunchState& l = current_launch();
  Fiber& f = *tl_fiber;
  wgmma_step(l, f, WgmmaStep{WgmmaStep::kWait, uint64_t(pending)});
  while (int(f.committed_wgmma.size()) > pending) {
    std::vector<WgmmaIssue> group = std::move(f.committed_wgmma.front());
    f.committed_wgmma.erase(f.committed_wgmma.begin());
    for (WgmmaIssue& op : group) run_wgmma(f, op);
  }
  f.wgmma_fenced = false;
}

void set_dynamic_shared_limit(const void* kernel, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_limits_mutex);
  g_dynamic_shared_limits[kernel] = bytes;
}

size_t dynamic_shared_limit(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_limits_mutex);
  const auto it = g_dynamic_shared_limits.find(kernel);
  return it == g_dynamic_shared_limits.end() ? kDefaultDynamicSharedLimit : it->second;
}

std::string run_grid(const void* kernel, Dim3 grid, Dim3 block, size_t dynamic_smem, KernelBody body,
                     void* closure) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0 || threads > 1024 || block.z > 64 ||
      grid.y > 65535 || grid.z > 65535)
    return "invalid configuration argument: grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," +
           std::to_string(grid.z) + "), block (" + std::to_string(block.x) + "," + std::to_string(block.y) + "," +
           std::to_string(block.z) + ")";
  const size_t limit = dynamic_shared_limit(kernel);
  if (dynamic_smem > limit)
    return "too much dynamic shared memory: " + std::to_string(dynamic_smem) + " bytes, over the kernel's limit of " +
           std::to_string(limit) +
           (limit == kDefaultDynamicSharedLimit
                ? " (the default; cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) raises it)"
                : "");
  std::lock_guard<std::mutex> serial(g_launch_mutex);
  if (tl_launch) return "simt: a kernel launched another kernel";
  LaunchState l;
  l.grid = grid;
  l.block = block;
  l.body = body;
  l.closure = closure;
  if (dynamic_smem > 0 && !l.smem.allocate(dynamic_smem)) return "simt: could not allocate shared memory";
  const int n = int(threads);
  std::vector<ThreadSlot>& pool = slot_pool();
  while (int(pool.size()) < n) {
    ThreadSlot slot;
    slot.stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (slot.stack == MAP_FAILED) return "simt: could not map fiber stacks";
#if defined(SIMT_TSAN)
    slot.tsan_fiber = __tsan_create_fiber(0);
#endif
    pool.push_back(slot);
  }
  l.fibers.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    Fiber& f = l.fibers[size_t(i)];
    f.stack = pool[size_t(i)].stack;
    f.tsan_fiber = pool[size_t(i)].tsan_fiber;
    f.linear = i;
    f.place.thread = Dim3{unsigned(i) % block.x, unsigned(i) / block.x % block.y, unsigned(i) / (block.x * block.y)};
    f.place.block_dim = block;
    f.place.grid_dim = grid;
  }
  l.warps.resize(size_t((n + kWarp - 1) / kWarp));
  for (size_t w = 0; w < l.warps.size(); ++w) {
    const int lanes = std::min(kWarp, n - int(w) * kWarp);
    l.warps[w].existing = lanes == kWarp ? 0xffffffffu : (1u << lanes) - 1;
  }
#if defined(SIMT_TSAN)
  l.scheduler_tsan_fiber = __tsan_get_current_fiber();
#endif
  tl_launch = &l;
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  for (uint64_t i = 0; i < blocks && !l.failed; ++i) {
    l.current_block = Dim3{unsigned(i % grid.x), unsigned(i / grid.x % grid.y), unsigned(i / (uint64_t(grid.x) * grid.y))};
    run_block(l);
  }
  tl_launch = nullptr;
  return l.fault;
}

void record_launch_error(const std::string& message) {
  std::lock_guard<std::mutex> lock(g_error_mutex);
  if (g_launch_error.empty()) g_launch_error = message;
}

std::string take_launch_error() {
  std::lock_guard<std::mutex> lock(g_error_mutex);
  return std::exchange(g_launch_error, std::string());
}

bool has_launch_error() {
  std::lock_guard<std::mutex> lock(g_error_mutex);
  return !g_launch_error.empty();
}

}  // namespace synthpert::simt
