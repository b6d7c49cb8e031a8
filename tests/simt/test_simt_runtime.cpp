// The emulation's own semantics, against values worked out here from the CUDA
// programming guide's definitions (coordinates, shuffles with widths, shared
// memory), and the faults it must turn into failed launches.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "tests/simt/selftest_kernels.h"
#include "tests/simt/simt_runtime.h"

using synthpert::simt_test::Fault;
using synthpert::simt_test::PipelineFlaw;
using synthpert::simt_test::WgmmaFault;
using synthpert::simt_test::WgmmaForm;

TEST_CASE("simt: thread and block coordinates of a 2-D launch", "[simt]") {
  const int gx = 3, gy = 2, bx = 5, by = 7;
  std::vector<int> out(gx * gy * bx * by, -1);
  REQUIRE(synthpert::simt_test::launch_coordinates(gx, gy, bx, by, out.data()) == cudaSuccess);
  for (int block = 0; block < gx * gy; ++block)
    for (int t = 0; t < bx * by; ++t) REQUIRE(out[block * bx * by + t] == block * 1000 + t);
}

TEST_CASE("simt: warp shuffles and a shared-memory reduction sum each block", "[simt]") {
  const int blocks = 3, threads = 96;
  std::vector<float> in(blocks * threads), sums(blocks, -1.f);
  std::iota(in.begin(), in.end(), 1.f);
  REQUIRE(synthpert::simt_test::launch_block_sum(blocks, threads, in.data(), sums.data()) == cudaSuccess);
  for (int b = 0; b < blocks; ++b) {
    float expect = 0.f;
    for (int t = 0; t < threads; ++t) expect += in[b * threads + t];
    REQUIRE(sums[b] == expect);  // integers below 2^24: exact in any order
  }
}

TEST_CASE("simt: shuffle lane arithmetic with segment widths", "[simt]") {
  for (int width : {32, 16, 8}) {
    for (int delta : {1, 3}) {
      const int src = 5;
      std::vector<int> out(4 * 32, -1);
      REQUIRE(synthpert::simt_test::launch_shuffles(delta, src, width, out.data()) == cudaSuccess);
      for (int lane = 0; lane < 32; ++lane) {
        INFO("width " << width << " delta " << delta << " lane " << lane);
        const int in_segment = lane % width, segment_start = lane - in_segment;
        CHECK(out[4 * lane + 0] == 100 + (lane ^ 1));
        CHECK(out[4 * lane + 1] == 100 + (in_segment + delta < width ? lane + delta : lane));
        CHECK(out[4 * lane + 2] == 100 + (in_segment - delta >= 0 ? lane - delta : lane));
        CHECK(out[4 * lane + 3] == 100 + segment_start + src % width);
      }
    }
  }
}

TEST_CASE("simt: dynamic shared memory is shared by the block", "[simt]") {
  const int threads = 77;
  std::vector<int> out(threads, -1);
  REQUIRE(synthpert::simt_test::launch_reverse_through_dynamic_shared(threads, out.data()) == cudaSuccess);
  for (int t = 0; t < threads; ++t) REQUIRE(out[t] == (threads - 1 - t) * 7);
}

TEST_CASE("simt: over 48 KiB of dynamic shared memory needs the kernel's limit raised first", "[simt]") {
  using synthpert::simt_test::launch_large_dynamic_shared;
  std::vector<int> out(32, -1);
  // 48 KiB is allowed as it is; one int more is not, until the limit is raised.
  REQUIRE(launch_large_dynamic_shared(48 * 1024, false, out.data()) == cudaSuccess);
  CHECK(out[31] == 42);
  const cudaError_t err = launch_large_dynamic_shared(48 * 1024 + 4, false, out.data());
  REQUIRE(err == cudaErrorLaunchFailure);
  CHECK(std::strstr(cudaGetErrorString(err), "over the kernel's limit of 49152") != nullptr);
  out.assign(32, -1);
  REQUIRE(launch_large_dynamic_shared(100 * 1024, true, out.data()) == cudaSuccess);
  CHECK(out[0] == 42);
  // The raised limit is the new bound; the device's opt-in maximum cannot be passed.
  CHECK(launch_large_dynamic_shared(100 * 1024 + 4, false, out.data()) == cudaErrorLaunchFailure);
  CHECK(launch_large_dynamic_shared(227 * 1024 + 4, true, out.data()) == cudaErrorInvalidValue);
}

TEST_CASE("simt: faults become failed launches with a reason, and the next launch runs", "[simt]") {
  struct Case {
    Fault fault;
    const char* reason;
  };
  for (const Case& c :
       {Case{Fault::kDeadlock, "deadlock"}, Case{Fault::kShuffleWithReturnedLane, "returned"},
        Case{Fault::kTrap, "__trap()"}, Case{Fault::kTooManyThreads, "invalid configuration"},
        Case{Fault::kMbarrierPhaseNeverCompletes, "deadlock"}, Case{Fault::kMbarrierUninitialised, "no mbarrier.init"},
        Case{Fault::kNamedBarrierCounts, "earlier arrivals of the same completion said 64"}}) {
    INFO(c.reason);
    const cudaError_t err = synthpert::simt_test::launch_fault(c.fault);
    REQUIRE(err == cudaErrorLaunchFailure);
    CHECK(std::strstr(cudaGetErrorString(err), c.reason) != nullptr);
    CHECK(cudaGetLastError() == cudaSuccess);  // taken by the first call
    std::vector<int> out(4, -1);
    REQUIRE(synthpert::simt_test::launch_reverse_through_dynamic_shared(4, out.data()) == cudaSuccess);
    CHECK(out[0] == 21);
  }
}

TEST_CASE("simt: the two schedules expose a missing barrier differently", "[simt][simt-race]") {
  const int threads = 64;
  int base = 1000;
  auto fresh_reads = [&](synthpert::simt::Schedule schedule, bool with_barrier) {
    synthpert::simt::set_schedule(schedule);
    base += 1000;  // values no earlier launch left in the shared slots
    std::vector<int> out(threads, -1);
    REQUIRE(synthpert::simt_test::launch_neighbour_read(threads, base, with_barrier, out.data()) == cudaSuccess);
    int fresh = 0;
    for (int t = 0; t < threads; ++t) fresh += out[t] == base + (t + 1) % threads;
    return fresh;
  };
  using synthpert::simt::Schedule;
  // Without the barrier, forward order runs each reader before its
  // neighbour's write (only the last thread reads thread 0's new value);
  // reverse order runs the writer first for all but the last thread.
  CHECK(fresh_reads(Schedule::kForward, false) == 1);
  CHECK(fresh_reads(Schedule::kReverse, false) == threads - 1);
  CHECK(fresh_reads(Schedule::kForward, true) == threads);
  CHECK(fresh_reads(Schedule::kReverse, true) == threads);
  synthpert::simt::set_schedule(Schedule::kForward);
}

TEST_CASE("simt: mbarriers hand stages from a producer warp to consumer warps", "[simt]") {
  for (const auto schedule : {synthpert::simt::Schedule::kForward, synthpert::simt::Schedule::kReverse}) {
    synthpert::simt::set_schedule(schedule);
    for (int items : {1, 2, 7}) {
      INFO("items " << items << ", reverse schedule " << (schedule == synthpert::simt::Schedule::kReverse));
      std::vector<int> sums(64, -1);
      REQUIRE(synthpert::simt_test::launch_mbarrier_pipeline(items, PipelineFlaw::kNone, sums.data()) == cudaSuccess);
      // Round i gave consumer c the value i * 1000 + c.
      for (int c = 0; c < 64; ++c) CHECK(sums[size_t(c)] == 1000 * items * (items - 1) / 2 + items * c);
    }
  }
  synthpert::simt::set_schedule(synthpert::simt::Schedule::kForward);
}

// Only ThreadSanitizer sees this one for sure: the values read depend on the
// schedule, the missing acquire does not.
TEST_CASE("simt: consumers that skip the mbarrier wait race with the producer", "[simt-race][mbarrier-wait]") {
  std::vector<int> sums(64, -1);
  REQUIRE(synthpert::simt_test::launch_mbarrier_pipeline(2, PipelineFlaw::kNoFullWait, sums.data()) == cudaSuccess);
}

TEST_CASE("simt: consumers that release a stage before reading it race with the producer",
          "[simt-race][mbarrier-release]") {
  std::vector<int> sums(64, -1);
  REQUIRE(synthpert::simt_test::launch_mbarrier_pipeline(3, PipelineFlaw::kReleaseBeforeRead, sums.data()) ==
          cudaSuccess);
}

namespace {
// A [10 tokens][3 heads][64 channels] u16 tensor, value token * 1000 +
// head * 100 + channel, as TMA sees it: dims (channel, head, token).
struct TmaTensor {
  std::vector<unsigned short> values = std::vector<unsigned short>(10 * 3 * 64);
  uint64_t dims[3] = {64, 3, 10};
  uint64_t strides[2] = {64 * 2, 3 * 64 * 2};
  TmaTensor() {
    for (int t = 0; t < 10; ++t)
      for (int h = 0; h < 3; ++h)
        for (int c = 0; c < 64; ++c)
          values[size_t((t * 3 + h) * 64 + c)] = static_cast<unsigned short>(t * 1000 + h * 100 + c);
  }
};
}  // namespace

// The expected bytes are the 128-byte swizzle of the PTX ISA (and of the
// kernels' cp.async loader, kernels/attention_wgmma.cuh): row r of the box
// at r * 128 bytes, its 16-byte chunk j at chunk j ^ (r % 8).
TEST_CASE("simt: a TMA tile copy swizzles its box and zero-fills outside the tensor", "[simt]") {
  using synthpert::simt_test::TmaFlaw;
  TmaTensor t;
  const uint32_t box[3] = {64, 1, 8};
  for (const int token : {5, -3, 0}) {
    INFO("first token " << token);
    const int c[3] = {0, 1, token};
    std::vector<unsigned char> out(64 * 8 * 2, 0xAB);
    REQUIRE(synthpert::simt_test::launch_tma_copy(t.values.data(), t.dims, t.strides, box, c, 0, TmaFlaw::kNone,
                                                  out.data()) == cudaSuccess);
    for (int r = 0; r < 8; ++r)
      for (int col = 0; col < 64; ++col) {
        const size_t at = size_t(r) * 128 + size_t((col / 8) ^ (r % 8)) * 16 + size_t(col % 8) * 2;
        unsigned short got;
        std::memcpy(&got, &out[at], 2);
        const int tok = token + r;
        const int want = tok >= 0 && tok < 10 ? tok * 1000 + 100 + col : 0;
        INFO("row " << r << " channel " << col);
        REQUIRE(int(got) == want);
      }
  }
}

TEST_CASE("simt: TMA copies and tensor maps outside the rules fail", "[simt]") {
  using synthpert::simt_test::TmaFlaw;
  TmaTensor t;
  std::vector<unsigned char> out(64 * 8 * 2 * 2);
  const int c[3] = {0, 0, 0};
  const uint32_t box[3] = {64, 1, 8};
  // The 128-byte swizzle needs a 1024-byte aligned destination.
  const cudaError_t err = synthpert::simt_test::launch_tma_copy(t.values.data(), t.dims, t.strides, box, c, 128,
                                                                TmaFlaw::kNone, out.data());
  REQUIRE(err == cudaErrorLaunchFailure);
  CHECK(std::strstr(cudaGetErrorString(err), "1024-byte aligned") != nullptr);
  // A box row wider than the swizzle span, and a token stride that does not
  // cover the heads below it: the encoder refuses both.
  const uint32_t wide[3] = {128, 1, 8};
  CHECK(synthpert::simt_test::launch_tma_copy(t.values.data(), t.dims, t.strides, wide, c, 0, TmaFlaw::kNone,
                                              out.data()) == cudaErrorInvalidValue);
  const uint64_t overlapping[2] = {64 * 2, 2 * 64 * 2};
  CHECK(synthpert::simt_test::launch_tma_copy(t.values.data(), t.dims, overlapping, box, c, 0, TmaFlaw::kNone,
                                              out.data()) == cudaErrorInvalidValue);
}

// An arrival that does not expect the copy's bytes completes the phase
// before the copy lands: the readers race with it (ThreadSanitizer).
TEST_CASE("simt: a TMA copy whose bytes the mbarrier does not expect races with its readers",
          "[simt-race][tma-expect]") {
  TmaTensor t;
  std::vector<unsigned char> out(64 * 8 * 2);
  const int c[3] = {0, 0, 0};
  const uint32_t box[3] = {64, 1, 8};
  REQUIRE(synthpert::simt_test::launch_tma_copy(t.values.data(), t.dims, t.strides, box, c, 0,
                                                synthpert::simt_test::TmaFlaw::kNoExpectTx, out.data()) == cudaSuccess);
}

TEST_CASE("simt: named barriers make two warps take turns", "[simt]") {
  for (const auto schedule : {synthpert::simt::Schedule::kForward, synthpert::simt::Schedule::kReverse}) {
    synthpert::simt::set_schedule(schedule);
    const int rounds = 5;
    std::vector<int> log(2 * rounds, -1);
    REQUIRE(synthpert::simt_test::launch_named_barrier_turns(rounds, log.data()) == cudaSuccess);
    for (int i = 0; i < 2 * rounds; ++i) CHECK(log[size_t(i)] == i % 2);
  }
  synthpert::simt::set_schedule(synthpert::simt::Schedule::kForward);
}

namespace {
// bf16 bit pattern of a small integer (exact: its float's upper 16 bits).
unsigned short bf16_bits(int v) {
  const float f = float(v);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<unsigned short>(u >> 16);
}
}  // namespace

TEST_CASE("simt: wgmma m64nNk16 multiplies as the PTX ISA lays out its operands", "[simt]") {
  // Integers in [-8, 8]: every product and sum is exact in fp32, so the
  // result must equal the plain product bit for bit.
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return int(state >> 28) - 8;
  };
  for (WgmmaForm form : {WgmmaForm::kSharedShared, WgmmaForm::kRegistersMnMajor, WgmmaForm::kSharedMnMajor,
                         WgmmaForm::kSharedSharedN128, WgmmaForm::kRegistersMnMajorN128})
    for (unsigned group_stride : {1024u, 2048u}) {
      const int n_cols = synthpert::simt_test::wgmma_form_n(form);
      INFO((form == WgmmaForm::kSharedShared       ? "shared A, K-major B"
            : form == WgmmaForm::kRegistersMnMajor ? "register A, MN-major B"
            : form == WgmmaForm::kSharedMnMajor    ? "shared A, MN-major B"
            : form == WgmmaForm::kSharedSharedN128 ? "shared A, K-major B, n128"
                                                   : "register A, MN-major B, n128")
           << ", 8-row groups " << group_stride << " bytes apart");
      std::vector<int> a(64 * 16), b(16 * n_cols);
      for (int& v : a) v = next();
      for (int& v : b) v = next();
      std::vector<unsigned short> a_bits(a.size()), b_bits(b.size());
      for (size_t i = 0; i < a.size(); ++i) a_bits[i] = bf16_bits(a[i]);
      for (size_t i = 0; i < b.size(); ++i) b_bits[i] = bf16_bits(b[i]);
      std::vector<float> out(64 * n_cols, -1.f);
      REQUIRE(synthpert::simt_test::launch_wgmma(form, group_stride, a_bits.data(), b_bits.data(), out.data()) ==
              cudaSuccess);
      int wrong = 0;
      for (int m = 0; m < 64; ++m)
        for (int n = 0; n < n_cols; ++n) {
          int expect = 0;
          for (int k = 0; k < 16; ++k) expect += a[m * 16 + k] * b[k * n_cols + n];
          wrong += out[m * n_cols + n] != float(expect);
        }
      CHECK(wrong == 0);
    }
}

TEST_CASE("simt: wgmma misuse fails the launch with a reason", "[simt]") {
  struct Case {
    WgmmaFault fault;
    const char* reason;
  };
  for (const Case& c : {Case{WgmmaFault::kNoWgmmaFence, "without a wgmma.fence"},
                        Case{WgmmaFault::kNoWait, "in flight"},
                        Case{WgmmaFault::kUnfencedCopy, "fence.proxy.async missing"},
                        Case{WgmmaFault::kSwizzleMode, "swizzle mode 0"},
                        Case{WgmmaFault::kOutsideShared, "outside the launch's dynamic shared memory"},
                        Case{WgmmaFault::kLaneDescriptors, "different descriptors"},
                        Case{WgmmaFault::kRegistersChanged, "A registers changed"},
                        Case{WgmmaFault::kAccumulatorsChanged, "accumulators changed"},
                        Case{WgmmaFault::kWarpSkips, "wgmma instruction 1 of thread 96 is a wgmma.commit_group, of thread 0 a wgmma.mma_async"},
                        Case{WgmmaFault::kWarpDescriptors, "is a wgmma.mma_async with other operands than thread 0's"},
                        Case{WgmmaFault::kPartialWarpgroup, "warpgroup of fewer than 128 threads"}}) {
    INFO(c.reason);
    const cudaError_t err = synthpert::simt_test::launch_wgmma_fault(c.fault);
    REQUIRE(err == cudaErrorLaunchFailure);
    CHECK(std::strstr(cudaGetErrorString(err), c.reason) != nullptr);
  }
}
