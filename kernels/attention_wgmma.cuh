// Hopper (sm_90a) warpgroup primitives for the wgmma attention forward
// (kernels/attention_fwd_sm90_impl.cuh): 128-byte-swizzled shared-memory
// tiles, wgmma shared-memory matrix descriptors, and the two
// wgmma.mma_async shapes the kernel issues.
//
// Shared-memory tile layout (PTX ISA, "Shared Memory Matrix Layout", 128B
// swizzling). A [kRows][D] tile of 16-bit values is stored as D/64 panels of
// 64 columns; panel p holds columns 64p..64p+63 of every row, one 128-byte
// line per row. Within a line the 16-byte chunk c (columns 8c..8c+7 of the
// panel) sits at chunk position c ^ (row % 8). Every panel starts on a
// 1024-byte boundary, so this XOR is exactly what the hardware's 128B swizzle
// applies to address bits [4,7) from bits [7,10), and descriptors need base
// offset 0.
//
// The same bytes serve both operand orientations of the kernel:
//   * K-major (Q as A and K as B of S = Q K^T): rows are M or N, columns K.
//     Canonical layout Swizzle<3,4,3> o ((8,m),(T,2k)):((8T,SBO),(1,T)) with
//     T = 8 elements: 8-row groups SBO = 1024 bytes apart; LBO unused. One
//     k16 step is 32 bytes, so step j of a panel starts 32 * j bytes in.
//   * MN-major (V as B of O = P V, imm-trans-b = 1): rows are K (keys),
//     columns N (head dim). Canonical layout
//     Swizzle<3,4,3> o ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)): 64 N-columns per
//     128-byte line, 8-key groups SBO = 1024 bytes apart, 64-column panels LBO
//     apart. The kernel issues one n64 instruction per panel, so m = 1 and LBO
//     is never stepped over; it is set to the panel stride all the same.
//
// Register fragments: the m64nNk16 f32 accumulator gives warp w of the
// warpgroup rows 16w..16w+15, in the mma.m16n8k16 C layout repeated over the
// N/8 column tiles (register 4i+r of a thread is tile i's c_r), and the
// register A operand of m64nNk16 is the mma.m16n8k16 A layout per warp. So
// the online softmax and the C->A reuse of kernels/attention_fwd_impl.cuh
// carry over unchanged.
//
// Every asm body is compiled only for sm_90a (wgmma does not exist before);
// elsewhere the helpers are empty and the kernel traps.
#pragma once

#include <cstdint>

#include "kernels/attention_mma.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SPK_HAVE_WGMMA 1
#else
#define SPK_HAVE_WGMMA 0
#endif

namespace synthpert::kernels::attn {

constexpr int kSwizzleLineBytes = 128;  // one 64-column line of a panel
constexpr int kSwizzleAtomBytes = 1024;  // 8 lines: the period of the 128B swizzle

// Byte offset of element (row, col) in a [kRows][D] tile of 16-bit values
// stored in 128B-swizzled panels (layout above).
template <int kRows>
__host__ __device__ constexpr uint32_t swizzled_offset(int row, int col) {
  return uint32_t(col / 64) * (kRows * kSwizzleLineBytes) + uint32_t(row) * kSwizzleLineBytes +
         uint32_t(((col % 64) / 8) ^ (row % 8)) * 16 + uint32_t(col % 8) * 2;
}

// stage_rows_async into the swizzled tile at `dst` (1024-byte aligned).
template <typename T, int kRows, int D, int kThreads>
__device__ __forceinline__ void load_tile_swizzled_async(unsigned char* dst, const T* src, int64_t token_stride,
                                                         int rows_valid) {
  stage_rows_async<T, kRows, D, kThreads>(src, token_stride, rows_valid,
                                          [dst](int row, int col) { return dst + swizzled_offset<kRows>(row, col); });
}

// wgmma shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
// bits 0-13 start address >> 4, 16-29 LBO >> 4, 32-45 SBO >> 4, 49-51 base
// offset (0: patterns start on 1024-byte boundaries), 62-63 swizzle (1: 128B).
__device__ __forceinline__ uint64_t wgmma_desc_sw128(const void* smem_ptr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  const uint32_t addr = smem_addr(smem_ptr);
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t((lbo_bytes & 0x3FFFF) >> 4) << 16) |
         (uint64_t((sbo_bytes & 0x3FFFF) >> 4) << 32) | (uint64_t(1) << 62);
}

// Orders this warpgroup's register writes (accumulators, A fragments) before
// the wgmma instructions that follow.
__device__ __forceinline__ void wgmma_fence() {
#if SPK_HAVE_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if SPK_HAVE_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most kPending committed groups are still running.
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
#if SPK_HAVE_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
#endif
}
// Makes this thread's generic-proxy shared-memory writes (cp.async, st.shared)
// visible to the async proxy through which wgmma reads its operands.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if SPK_HAVE_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Pins registers at this point of the program for the compiler: an in-flight
// wgmma owns its accumulators and A fragments until wgmma_wait, and the
// compiler, which sees only the issuing asm, must neither read them early nor
// reuse their registers. Called around every issue/wait pair.
template <int N>
__device__ __forceinline__ void pin_registers(float (&r)[N]) {
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void pin_registers(uint32_t (&r)[N]) {
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}
template <int M, int N>
__device__ __forceinline__ void pin_registers(float (&r)[M][N]) {
  for (int i = 0; i < M; ++i) pin_registers(r[i]);
}

#define SPK_WGMMA_D32 \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}"
#define SPK_WGMMA_D32_OPERANDS(d)                                                                              \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),  \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),   \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),  \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

// D (64x64 fp32, 32 registers per thread) += A (64x16) * B (16x64).
//   ss:       A and B K-major in shared memory (descriptors).
//   rs_mn_b:  A from registers (4 per thread, mma A layout), B MN-major in
//             shared memory (imm-trans-b = 1).
// The accumulate predicate is always set: callers zero D first.
#define SPK_DEFINE_WGMMA(TYPE, PTX_TYPE)                                                                     \
  template <>                                                                                                \
  struct Wgmma<TYPE> {                                                                                       \
    __device__ __forceinline__ static void ss(float* d, uint64_t desc_a, uint64_t desc_b) {                  \
      SPK_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                             \
                    "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " " SPK_WGMMA_D32   \
                    ", %32, %33, p, 1, 1, 0, 0;\n}\n"                                                        \
                    : SPK_WGMMA_D32_OPERANDS(d)                                                              \
                    : "l"(desc_a), "l"(desc_b), "r"(1));                                                     \
    }                                                                                                        \
    __device__ __forceinline__ static void rs_mn_b(float* d, const uint32_t a[4], uint64_t desc_b) {         \
      SPK_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                             \
                    "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " " SPK_WGMMA_D32   \
                    ", {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"                                             \
                    : SPK_WGMMA_D32_OPERANDS(d)                                                              \
                    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));                      \
    }                                                                                                        \
  };

#if SPK_HAVE_WGMMA
#define SPK_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SPK_WGMMA_ASM(...) ((void)d)
#endif

template <typename T>
struct Wgmma;
SPK_DEFINE_WGMMA(__nv_bfloat16, "bf16")
SPK_DEFINE_WGMMA(__half, "f16")

#undef SPK_DEFINE_WGMMA
#undef SPK_WGMMA_ASM
#undef SPK_WGMMA_D32_OPERANDS
#undef SPK_WGMMA_D32

}  // namespace synthpert::kernels::attn
