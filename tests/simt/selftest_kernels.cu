// Kernels for the emulation's self-tests (see selftest_kernels.h). Valid CUDA;
// compiled only through translate_launches.py for the emulation.
#include "tests/simt/selftest_kernels.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <cstdint>

#include "kernels/attention_pipeline_ptx.cuh"
#include "kernels/attention_ptx.cuh"
#include "kernels/attention_wgmma_ptx.cuh"

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

__global__ void last_int_kernel(int n, int* out) {
  extern __shared__ int words[];
  if (threadIdx.x == 0) words[n - 1] = 42;
  __syncthreads();
  out[threadIdx.x] = words[n - 1];
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

// --- mbarriers and named barriers -------------------------------------------
// Shared layout: two stages of 64 ints, then full[2] and empty[2].
constexpr int kPipelineStages = 2;
struct PipelineShared {
  int ring[kPipelineStages][64];
  uint64_t full[kPipelineStages], empty[kPipelineStages];
};

__global__ void mbarrier_pipeline_kernel(int items, PipelineFlaw flaw, int* sums) {
  extern __shared__ unsigned char smem_raw[];
  auto& sh = *reinterpret_cast<PipelineShared*>(smem_raw);
  using namespace synthpert::kernels::attn;
  if (threadIdx.x == 0)
    for (int s = 0; s < kPipelineStages; ++s) {
      mbarrier_init(&sh.full[s], 32);   // every producer lane arrives
      mbarrier_init(&sh.empty[s], 64);  // every consumer thread arrives
    }
  __syncthreads();
  if (threadIdx.x < 32) {  // producer
    for (int i = 0; i < items; ++i) {
      const int s = i % kPipelineStages;
      if (i >= kPipelineStages) mbarrier_wait_parity(&sh.empty[s], uint32_t(i / kPipelineStages - 1) & 1);
      for (int k = 0; k < 2; ++k) sh.ring[s][2 * threadIdx.x + k] = i * 1000 + 2 * int(threadIdx.x) + k;
      mbarrier_arrive(&sh.full[s]);
    }
    return;
  }
  const int c = int(threadIdx.x) - 32;  // consumer
  int sum = 0;
  for (int i = 0; i < items; ++i) {
    const int s = i % kPipelineStages;
    if (flaw != PipelineFlaw::kNoFullWait) mbarrier_wait_parity(&sh.full[s], uint32_t(i / kPipelineStages) & 1);
    if (flaw == PipelineFlaw::kReleaseBeforeRead) {
      mbarrier_arrive(&sh.empty[s]);
      sum += sh.ring[s][c];
    } else {
      sum += sh.ring[s][c];
      mbarrier_arrive(&sh.empty[s]);
    }
  }
  sums[c] = sum;
}

__global__ void tma_copy_kernel(const __grid_constant__ CUtensorMap map, int c0, int c1, int c2, int dst_offset,
                                unsigned box_bytes, TmaFlaw flaw, unsigned char* out) {
  extern __shared__ unsigned char smem_raw[];
  using namespace synthpert::kernels::attn;
  uint64_t* bar = reinterpret_cast<uint64_t*>(smem_raw);
  unsigned char* base = smem_raw + 8;
  base += (1024 - smem_addr(base) % 1024) % 1024;
  unsigned char* dst = base + dst_offset;
  if (threadIdx.x == 0) {
    mbarrier_init(bar, 1);
    fence_mbarrier_init();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    if (flaw == TmaFlaw::kNoExpectTx)
      mbarrier_arrive(bar);
    else
      mbarrier_arrive_expect_tx(bar, box_bytes);
    tma_load_3d(dst, &map, bar, c0, c1, c2);
  }
  mbarrier_wait_parity(bar, 0);
  for (unsigned i = threadIdx.x; i < box_bytes; i += 32) out[i] = dst[i];
}

__global__ void named_barrier_turns_kernel(int rounds, int* log) {
  __shared__ int next;
  using namespace synthpert::kernels::attn;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if (threadIdx.x == 0) next = 0;
  __syncthreads();
  if (warp == 1) named_barrier_arrive(1, 64);  // warp 0 goes first
  for (int r = 0; r < rounds; ++r) {
    named_barrier_sync(1 + warp, 64);  // my turn: my 32 threads and the other warp's arrival
    if (lane == 0) log[next++] = warp;
    // Warp 1's last arrival would start a completion nobody finishes.
    if (!(warp == 1 && r == rounds - 1)) named_barrier_arrive(2 - warp, 64);
  }
}

__global__ void mbarrier_fault_kernel(Fault fault) {
  extern __shared__ unsigned char smem_raw[];
  auto* bar = reinterpret_cast<uint64_t*>(smem_raw);
  using namespace synthpert::kernels::attn;
  if (fault == Fault::kMbarrierUninitialised) {
    mbarrier_arrive(bar);
    return;
  }
  if (fault == Fault::kNamedBarrierCounts) {
    if (threadIdx.x < 32) named_barrier_sync(1, 64);  // runs first in the forward schedule
    else named_barrier_arrive(1, 32);
    return;
  }
  if (threadIdx.x == 0) mbarrier_init(bar, 65);  // one arrival more than the block makes
  __syncthreads();
  mbarrier_arrive(bar);
  mbarrier_wait_parity(bar, 0);
}

// --- wgmma -----------------------------------------------------------------
// Written from the PTX ISA's figures, not from the kernels' helpers: a
// 128-byte-swizzled operand is made of 8-row groups of 128-byte lines; in
// line r of a group, the 16-byte chunk c (8 consecutive elements along the
// line) is stored at chunk position c ^ r.

constexpr int kWgmmaThreads = 128;
constexpr unsigned kTileBytes = 16384;  // 64 lines (8 groups) at a group stride up to 2048
constexpr unsigned kWgmmaSmem = 2 * kTileBytes + 1024;  // A, B, alignment slack
// wgmma_kernel's B has up to 128 lines (N = 128): twice a tile.
constexpr unsigned kWgmmaProductSmem = 3 * kTileBytes + 1024;

__device__ unsigned swizzled_byte(unsigned group_stride, int line, int element) {
  return unsigned(line / 8) * group_stride + unsigned(line % 8) * 128 + unsigned((element / 8) ^ (line % 8)) * 16 +
         unsigned(element % 8) * 2;
}

// Descriptor fields written out one by one (PTX ISA, "Matrix Descriptor").
__device__ uint64_t descriptor(const void* p, unsigned lbo, unsigned sbo, unsigned swizzle) {
  const uint32_t address = synthpert::kernels::attn::smem_addr(p);
  return uint64_t((address >> 4) & 0x3FFF) | uint64_t((lbo >> 4) & 0x3FFF) << 16 |
         uint64_t((sbo >> 4) & 0x3FFF) << 32 | uint64_t(swizzle) << 62;
}

__device__ unsigned char* aligned_1024(unsigned char* p) {
  const uint32_t a = synthpert::kernels::attn::smem_addr(p);
  return p + (1024 - a % 1024) % 1024;
}

__global__ void wgmma_kernel(WgmmaForm form, unsigned group_stride, const uint16_t* a, const uint16_t* b,
                             float* out) {
  using namespace synthpert::kernels::attn;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* sA = aligned_1024(smem_raw);
  unsigned char* sB = sA + kTileBytes;
  const bool registers = form == WgmmaForm::kRegistersMnMajor || form == WgmmaForm::kRegistersMnMajorN128;
  const bool b_mn_major = registers || form == WgmmaForm::kSharedMnMajor;
  const int n_cols = wgmma_form_n(form);
  // MN-major B: columns 64p..64p+63 form the swizzle atom at p * mn_atom_stride
  // (the descriptor's LBO), which leaves one atom unused between the two of
  // the n128 form, so that a layout that ignored LBO could not pass.
  const unsigned mn_atom_stride = form == WgmmaForm::kRegistersMnMajorN128 ? 2 * group_stride + 1024 : 64 * 128;
  if (threadIdx.x == 0) {
    for (int m = 0; m < 64; ++m)  // A: line m holds row m (K-major)
      for (int k = 0; k < 16; ++k) *reinterpret_cast<uint16_t*>(sA + swizzled_byte(group_stride, m, k)) = a[m * 16 + k];
    for (int k = 0; k < 16; ++k)
      for (int n = 0; n < n_cols; ++n) {
        // B K-major: line n holds column n; MN-major: line k holds row k.
        const unsigned at = b_mn_major ? (n / 64) * mn_atom_stride + swizzled_byte(group_stride, k, n % 64)
                                       : swizzled_byte(group_stride, n, k);
        *reinterpret_cast<uint16_t*>(sB + at) = b[k * n_cols + n];
      }
  }
  fence_proxy_async_shared();
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  float d[64] = {};
  wgmma_fence();
  if (form == WgmmaForm::kSharedSharedN128) {
    Wgmma<__nv_bfloat16>::ss_n128(d, descriptor(sA, 16, group_stride, 1), descriptor(sB, 16, group_stride, 1));
  } else if (registers) {
    // A fragment register r: row 16 warp + g + 8 (r % 2), columns 2t + 8 (r / 2) and + 1.
    uint32_t frag[4];
    for (int r = 0; r < 4; ++r) {
      const int row = 16 * warp + g + 8 * (r % 2), col = 2 * t + 8 * (r / 2);
      frag[r] = uint32_t(a[row * 16 + col]) | uint32_t(a[row * 16 + col + 1]) << 16;
    }
    const uint64_t desc_b = descriptor(sB, mn_atom_stride, group_stride, 1);
    if (n_cols == 128)
      Wgmma<__nv_bfloat16>::rs_mn_b_n128(d, frag, desc_b);
    else
      Wgmma<__nv_bfloat16>::rs_mn_b(d, frag, desc_b);
  } else if (b_mn_major) {
    Wgmma<__nv_bfloat16>::ss_mn_b(d, descriptor(sA, 16, group_stride, 1),
                                  descriptor(sB, mn_atom_stride, group_stride, 1));
  } else {
    Wgmma<__nv_bfloat16>::ss(d, descriptor(sA, 16, group_stride, 1), descriptor(sB, 16, group_stride, 1));
  }
  wgmma_commit();
  wgmma_wait<0>();
  // D register 4i + r: row 16 warp + g + 8 (r / 2), column 8i + 2t + r % 2.
  for (int i = 0; i < n_cols / 8; ++i)
    for (int r = 0; r < 4; ++r)
      out[(16 * warp + g + 8 * (r / 2)) * n_cols + 8 * i + 2 * t + r % 2] = d[4 * i + r];
}

__global__ void wgmma_fault_kernel(WgmmaFault fault, const uint16_t* global_tile) {
  using namespace synthpert::kernels::attn;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* sA = aligned_1024(smem_raw);
  unsigned char* sB = sA + kTileBytes;
  if (fault == WgmmaFault::kUnfencedCopy) {
    for (int i = threadIdx.x; i < int(kTileBytes / 16); i += blockDim.x) cp_async_16(sA + 16 * i, global_tile + 8 * i);
    cp_async_commit();
    cp_async_wait<0>();
  } else {
    for (int i = threadIdx.x; i < int(2 * kTileBytes); i += blockDim.x) sA[i] = 0;
    fence_proxy_async_shared();
  }
  __syncthreads();
  float d[32] = {};
  uint32_t frag[4] = {};
  if (fault != WgmmaFault::kNoWgmmaFence) wgmma_fence();
  uint64_t desc_a = descriptor(sA, 16, 1024, 1), desc_b = descriptor(sB, 16, 1024, 1);
  if (fault == WgmmaFault::kSwizzleMode) desc_b = descriptor(sB, 16, 1024, 0);
  if (fault == WgmmaFault::kOutsideShared) desc_b = descriptor(sB + kTileBytes, 16, 1024, 1);
  if (fault == WgmmaFault::kLaneDescriptors && threadIdx.x % 32 == 7) desc_a = descriptor(sB, 16, 1024, 1);
  const int warp = threadIdx.x / 32;
  if (fault == WgmmaFault::kWarpDescriptors && warp == 1) desc_b = descriptor(sA, 16, 1024, 1);
  if (fault == WgmmaFault::kRegistersChanged) {
    Wgmma<__nv_bfloat16>::rs_mn_b(d, frag, desc_b);
    frag[2] = 1;
  } else if (!(fault == WgmmaFault::kWarpSkips && warp == 3)) {
    Wgmma<__nv_bfloat16>::ss(d, desc_a, desc_b);
  }
  if (fault == WgmmaFault::kAccumulatorsChanged) d[5] = 1.f;
  wgmma_commit();
  if (fault != WgmmaFault::kNoWait) wgmma_wait<0>();
}

}  // namespace

cudaError_t launch_wgmma(WgmmaForm form, unsigned group_stride, const unsigned short* a, const unsigned short* b,
                         float* out) {
  const cudaError_t raised =
      cudaFuncSetAttribute(wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kWgmmaProductSmem));
  if (raised != cudaSuccess) return raised;
  wgmma_kernel<<<1, kWgmmaThreads, kWgmmaProductSmem>>>(form, group_stride, a, b, out);
  return cudaGetLastError();
}

cudaError_t launch_wgmma_fault(WgmmaFault fault) {
  static uint16_t tile[kTileBytes / 2];
  const int threads = fault == WgmmaFault::kPartialWarpgroup ? kWgmmaThreads - 32 : kWgmmaThreads;
  wgmma_fault_kernel<<<1, threads, kWgmmaSmem>>>(fault, tile);
  return cudaGetLastError();
}

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

cudaError_t launch_large_dynamic_shared(size_t bytes, bool raise_limit, int* out) {
  if (raise_limit) {
    const cudaError_t e = cudaFuncSetAttribute(last_int_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
    if (e != cudaSuccess) return e;
  }
  last_int_kernel<<<1, 32, bytes>>>(int(bytes / sizeof(int)), out);
  return cudaGetLastError();
}

cudaError_t launch_neighbour_read(int threads, int base, bool with_barrier, int* out) {
  neighbour_read_kernel<<<1, threads>>>(base, with_barrier, out);
  return cudaGetLastError();
}

cudaError_t launch_mbarrier_pipeline(int items, PipelineFlaw flaw, int* sums) {
  mbarrier_pipeline_kernel<<<1, 96, sizeof(PipelineShared)>>>(items, flaw, sums);
  return cudaGetLastError();
}

cudaError_t launch_tma_copy(const unsigned short* tensor, const uint64_t (&dims)[3],
                            const uint64_t (&strides)[2], const uint32_t (&box)[3], const int (&c)[3],
                            int dst_offset, TmaFlaw flaw, unsigned char* out) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
  if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) != cudaSuccess ||
      found != cudaDriverEntryPointSuccess)
    return cudaErrorNotSupported;
  alignas(64) CUtensorMap map;
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult res = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn)(
      &map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 3, const_cast<unsigned short*>(tensor), dims, strides, box,
      element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (res != CUDA_SUCCESS) return cudaErrorInvalidValue;
  const unsigned box_bytes = box[0] * box[1] * box[2] * 2;
  tma_copy_kernel<<<1, 32, 8 + 1024 + dst_offset + box_bytes>>>(map, c[0], c[1], c[2], dst_offset, box_bytes, flaw,
                                                                   out);
  return cudaGetLastError();
}

cudaError_t launch_named_barrier_turns(int rounds, int* log) {
  named_barrier_turns_kernel<<<1, 64>>>(rounds, log);
  return cudaGetLastError();
}

cudaError_t launch_fault(Fault fault) {
  static float out[2048];
  switch (fault) {
    case Fault::kDeadlock: deadlock_kernel<<<1, 64>>>(out); break;
    case Fault::kShuffleWithReturnedLane: returned_lane_kernel<<<1, 32>>>(out); break;
    case Fault::kTrap: trap_kernel<<<2, 32>>>(out); break;
    case Fault::kTooManyThreads: trap_kernel<<<1, 2048>>>(out); break;
    case Fault::kMbarrierPhaseNeverCompletes:
    case Fault::kMbarrierUninitialised:
    case Fault::kNamedBarrierCounts: mbarrier_fault_kernel<<<1, 64, 16>>>(fault); break;
  }
  return cudaGetLastError();
}

}  // namespace synthpert::simt_test
