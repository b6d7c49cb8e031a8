// Kernels for the emulation's self-tests (see selftest_kernels.h). Valid CUDA;
// compiled only through translate_launches.py for the emulation.
#include "tests/simt/selftest_kernels.h"

namespace synthpert::simt_test {
namespace {

__global__ void coordinates_kernel(int* out) {
  const int block = blockIdx.y * gridDim.x + blockIdx.x;
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  out[block * blockDim.x * blockDim.y + thread] = block * 1000 + thread;
}

__global__ void block_sum_kernel(const float* in, float* sums) {
  __shared__ float per_warp[32];
  float v = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) per_warp[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.f;
    for (int w = 0; w < int(blockDim.x / 32); ++w) total += per_warp[w];
    sums[blockIdx.x] = total;
  }
}

__global__ void shuffles_kernel(int delta, int src, int width, int* out) {
  const int lane = threadIdx.x, v = 100 + lane;
  out[4 * lane + 0] = __shfl_xor_sync(0xffffffffu, v, 1);
  out[4 * lane + 1] = __shfl_down_sync(0xffffffffu, v, delta, width);
  out[4 * lane + 2] = __shfl_up_sync(0xffffffffu, v, delta, width);
  out[4 * lane + 3] = __shfl_sync(0xffffffffu, v, src, width);
}

__global__ void reverse_kernel(int* out) {
  extern __shared__ int values[];
  values[threadIdx.x] = int(threadIdx.x) * 7;
  __syncthreads();
  out[threadIdx.x] = values[blockDim.x - 1 - threadIdx.x];
}

__global__ void neighbour_read_kernel(int base, bool with_barrier, int* out) {
  __shared__ int slot[1024];
  slot[threadIdx.x] = base + int(threadIdx.x);
  if (with_barrier) __syncthreads();
  out[threadIdx.x] = slot[(threadIdx.x + 1) % blockDim.x];
}

__global__ void deadlock_kernel(float* out) {
  // Lane 0 waits for the block while lanes 1..31 wait for lane 0.
  float v = float(threadIdx.x);
  if (threadIdx.x == 0) __syncthreads();
  else v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

__global__ void returned_lane_kernel(float* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, float(threadIdx.x), 1);
}

__global__ void trap_kernel(float* out) {
  if (threadIdx.x == 5) __trap();
  out[threadIdx.x] = 1.f;
}

}  // namespace

cudaError_t launch_coordinates(int grid_x, int grid_y, int block_x, int block_y, int* out) {
  coordinates_kernel<<<dim3(grid_x, grid_y), dim3(block_x, block_y)>>>(out);
  return cudaGetLastError();
}

cudaError_t launch_block_sum(int blocks, int threads, const float* in, float* sums) {
  block_sum_kernel<<<blocks, threads>>>(in, sums);
  return cudaGetLastError();
}

cudaError_t launch_shuffles(int delta, int src, int width, int* out) {
  shuffles_kernel<<<1, 32>>>(delta, src, width, out);
  return cudaGetLastError();
}

cudaError_t launch_reverse_through_dynamic_shared(int threads, int* out) {
  reverse_kernel<<<1, threads, threads * sizeof(int)>>>(out);
  return cudaGetLastError();
}

cudaError_t launch_neighbour_read(int threads, int base, bool with_barrier, int* out) {
  neighbour_read_kernel<<<1, threads>>>(base, with_barrier, out);
  return cudaGetLastError();
}

cudaError_t launch_fault(Fault fault) {
  static float out[2048];
  switch (fault) {
    case Fault::kDeadlock: deadlock_kernel<<<1, 64>>>(out); break;
    case Fault::kShuffleWithReturnedLane: returned_lane_kernel<<<1, 32>>>(out); break;
    case Fault::kTrap: trap_kernel<<<2, 32>>>(out); break;
    case Fault::kTooManyThreads: trap_kernel<<<1, 2048>>>(out); break;
  }
  return cudaGetLastError();
}

}  // namespace synthpert::simt_test
