// Small kernels that pin down the emulation's semantics (selftest_kernels.cu,
// checked by test_simt_runtime.cpp). Each launcher runs one launch on host
// buffers and returns cudaGetLastError() after it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace synthpert::simt_test {

// out[global linear thread] = block linear * 1000 + thread linear, over a
// 2-D grid of 2-D blocks.
cudaError_t launch_coordinates(int grid_x, int grid_y, int block_x, int block_y, int* out);

// Per block of `threads` threads: sums of in[block * threads + t] through
// warp shuffles and shared memory; sums[block] gets the total.
cudaError_t launch_block_sum(int blocks, int threads, const float* in, float* sums);

// One warp: out[4 * lane + {0,1,2,3}] = the lane's value read through
// shfl_xor(1), shfl_down(delta, width), shfl_up(delta, width) and
// shfl(src, width), with each lane's value 100 + lane.
cudaError_t launch_shuffles(int delta, int src, int width, int* out);

// out[t] = the value thread (threads - 1 - t) wrote to dynamic shared memory.
cudaError_t launch_reverse_through_dynamic_shared(int threads, int* out);

// 32 threads over `bytes` of dynamic shared memory: thread 0 writes 42 to the
// last int, every thread reads it into out[t]. With raise_limit, the kernel's
// cudaFuncAttributeMaxDynamicSharedMemorySize is set to `bytes` first (its
// error, if any, is returned without launching).
cudaError_t launch_large_dynamic_shared(size_t bytes, bool raise_limit, int* out);

// Thread t writes base + t to shared slot t, then (after a __syncthreads only
// if with_barrier) reads slot (t + 1) % threads into out[t]: without the
// barrier a data race, whose outcome depends on the schedule.
cudaError_t launch_neighbour_read(int threads, int base, bool with_barrier, int* out);

// One warpgroup computes out (64xN fp32, row-major) = A (64x16) * B (16xN)
// with one m64nNk16 wgmma, N = wgmma_form_n(form) (64 or 128); a and b are
// row-major 16-bit bf16 bit patterns.
// The kernel stores them in shared memory itself, as the PTX ISA's 128-byte
// swizzle figures draw them, with consecutive 8-row groups `group_stride`
// bytes apart (the descriptors' SBO; 1024 is dense, more leaves gaps).
//   kSharedShared:    A and B K-major in shared memory.
//   kRegistersMnMajor: A in registers (the m64nNk16 A fragment), B MN-major.
//   kSharedMnMajor:   A K-major and B MN-major, both in shared memory.
//   kSharedSharedN128: kSharedShared with N = 128 (m64n128k16).
//   kRegistersMnMajorN128: kRegistersMnMajor with N = 128, B's two 64-column
//                     swizzle atoms apart by a gap (the descriptor's LBO).
enum class WgmmaForm { kSharedShared, kRegistersMnMajor, kSharedMnMajor, kSharedSharedN128, kRegistersMnMajorN128 };
inline int wgmma_form_n(WgmmaForm form) {
  return form == WgmmaForm::kSharedSharedN128 || form == WgmmaForm::kRegistersMnMajorN128 ? 128 : 64;
}
cudaError_t launch_wgmma(WgmmaForm form, unsigned group_stride, const unsigned short* a, const unsigned short* b,
                         float* out);

// Misuses of wgmma the emulation must fail the launch for.
enum class WgmmaFault {
  kNoWgmmaFence,       // issued without wgmma.fence
  kNoWait,             // the thread returns with the wgmma in flight
  kUnfencedCopy,       // operands written by cp.async, no fence.proxy.async
  kSwizzleMode,        // a descriptor without the 128-byte swizzle
  kOutsideShared,      // an operand past the end of dynamic shared memory
  kLaneDescriptors,    // lanes of a warp issue different descriptors
  kRegistersChanged,   // A registers overwritten before the wait
  kAccumulatorsChanged,  // an accumulator written before the wait
  kWarpSkips,          // one warp of the warpgroup does not issue the wgmma
  kWarpDescriptors,    // one warp of the warpgroup issues another B descriptor
  kPartialWarpgroup,   // a block of 96 threads: no whole warpgroup
};
cudaError_t launch_wgmma_fault(WgmmaFault fault);

// A producer warp hands `items` rounds of 64 ints to two consumer warps
// through a ring of two shared-memory stages, each with a "full" and an
// "empty" mbarrier: in round i the producer writes i * 1000 + c for consumer
// thread c, and consumer thread c adds what it reads into sums[c]. The flaws
// are races: the consumers skip the "full" wait, or release a stage
// ("empty") before reading it.
enum class PipelineFlaw { kNone, kNoFullWait, kReleaseBeforeRead };
cudaError_t launch_mbarrier_pipeline(int items, PipelineFlaw flaw, int* sums);

// A TMA tile copy (cp.async.bulk.tensor.3d) of the u16 tensor at `tensor`
// (dims and byte strides as cuTensorMapEncodeTiled takes them, 128-byte
// swizzle) at coordinates c into shared memory `dst_offset` bytes past a
// 1024-byte boundary, completing on an mbarrier of one arrival; 32 threads
// wait for its phase and copy the box's shared bytes to `out`. The flaw:
// the arrival does not expect the copy's bytes (plain mbarrier.arrive), so
// the phase completes before the copy lands, a race. Returns
// cudaErrorInvalidValue when the encoder refuses the map.
enum class TmaFlaw { kNone, kNoExpectTx };
cudaError_t launch_tma_copy(const unsigned short* tensor, const uint64_t (&dims)[3],
                            const uint64_t (&strides)[2], const uint32_t (&box)[3], const int (&c)[3],
                            int dst_offset, TmaFlaw flaw, unsigned char* out);

// Two warps take `rounds` turns each through named barriers 1 and 2 (warp 0
// first); in its turn a warp's lane 0 appends the warp's index to log, so
// log reads 0, 1, 0, 1, ... whatever the schedule.
cudaError_t launch_named_barrier_turns(int rounds, int* log);

// Faults the emulation must report as failed launches.
enum class Fault {
  kDeadlock,
  kShuffleWithReturnedLane,
  kTrap,
  kTooManyThreads,
  kMbarrierPhaseNeverCompletes,  // consumers wait for an arrival nobody makes
  kMbarrierUninitialised,        // arrive on an mbarrier no init set up
  kNamedBarrierCounts,           // two arrivals of one completion name different counts
};
cudaError_t launch_fault(Fault fault);

}  // namespace synthpert::simt_test
