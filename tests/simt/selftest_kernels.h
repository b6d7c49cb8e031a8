// Small kernels that pin down the emulation's semantics (selftest_kernels.cu,
// checked by test_simt_runtime.cpp). Each launcher runs one launch on host
// buffers and returns cudaGetLastError() after it.
#pragma once

#include <cuda_runtime.h>

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

// Thread t writes base + t to shared slot t, then (after a __syncthreads only
// if with_barrier) reads slot (t + 1) % threads into out[t]: without the
// barrier a data race, whose outcome depends on the schedule.
cudaError_t launch_neighbour_read(int threads, int base, bool with_barrier, int* out);

// Faults the emulation must report as failed launches.
enum class Fault { kDeadlock, kShuffleWithReturnedLane, kTrap, kTooManyThreads };
cudaError_t launch_fault(Fault fault);

}  // namespace synthpert::simt_test
