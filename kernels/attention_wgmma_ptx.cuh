// The inline PTX of the wgmma attention kernels (sm_90a), kept apart like
// kernels/attention_ptx.cuh so that the host emulation
// (tests/simt/include/kernels/attention_wgmma_ptx.cuh) can stand in for
// exactly this file: wgmma.fence / commit_group / wait_group,
// fence.proxy.async, the five wgmma.mma_async forms the kernels issue, and the
// register pinning around them. Layouts and descriptors:
// kernels/attention_wgmma.cuh.
//
// Every asm body is compiled only for sm_90a (wgmma does not exist before);
// elsewhere the helpers are empty and the kernel traps.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SPK_HAVE_WGMMA 1
#else
#define SPK_HAVE_WGMMA 0
#endif

namespace synthpert::kernels::attn {

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

#define SPK_WGMMA_D64                                                                                            \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30," \
  "%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,"  \
  "%59,%60,%61,%62,%63}"

// D (64x64 fp32, 32 registers per thread) += A (64x16) * B (16x64).
//   ss:       A and B K-major in shared memory (descriptors).
//   ss_n128:  ss with B 16x128 (m64n128k16): D is 64x128, 64 registers per
//             thread in the same per-8-column layout continued (registers
//             32..63 are columns 64..127), as two n64 results side by side.
//   ss_mn_b:  A K-major, B MN-major (imm-trans-b = 1), both in shared memory.
//   rs_mn_b:  A from registers (4 per thread, mma A layout), B MN-major in
//             shared memory (imm-trans-b = 1).
//   rs_mn_b_n128: rs_mn_b with B 16x128 (m64n128k16): B's columns 64..127
//             are the next 64-column swizzle atom, LBO bytes on from the
//             first (the MN-major canonical layout's m = 2).
// The accumulate predicate is always set: callers zero D first.
#define SPK_DEFINE_WGMMA(TYPE, PTX_TYPE)                                                                     \
  template <>                                                                                                \
  struct Wgmma<TYPE> {                                                                                       \
    __device__ __forceinline__ static void ss(float* d, uint64_t desc_a, uint64_t desc_b) {                  \
      ss_trans_b<0>(d, desc_a, desc_b);                                                                      \
    }                                                                                                        \
    __device__ __forceinline__ static void ss_mn_b(float* d, uint64_t desc_a, uint64_t desc_b) {             \
      ss_trans_b<1>(d, desc_a, desc_b);                                                                      \
    }                                                                                                        \
    __device__ __forceinline__ static void ss_n128(float* d, uint64_t desc_a, uint64_t desc_b) {             \
      SPK_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                             \
                    "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE " " SPK_WGMMA_D64  \
                    ", %64, %65, p, 1, 1, 0, 0;\n}\n"                                                        \
                    : SPK_WGMMA_D32_OPERANDS(d), SPK_WGMMA_D32_OPERANDS((d + 32))                            \
                    : "l"(desc_a), "l"(desc_b), "r"(1));                                                     \
    }                                                                                                        \
    __device__ __forceinline__ static void rs_mn_b(float* d, const uint32_t a[4], uint64_t desc_b) {         \
      SPK_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                             \
                    "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " " SPK_WGMMA_D32   \
                    ", {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"                                             \
                    : SPK_WGMMA_D32_OPERANDS(d)                                                              \
                    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));                      \
    }                                                                                                        \
    __device__ __forceinline__ static void rs_mn_b_n128(float* d, const uint32_t a[4], uint64_t desc_b) {    \
      SPK_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                             \
                    "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE " " SPK_WGMMA_D64  \
                    ", {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"                                             \
                    : SPK_WGMMA_D32_OPERANDS(d), SPK_WGMMA_D32_OPERANDS((d + 32))                            \
                    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));                      \
    }                                                                                                        \
                                                                                                             \
   private:                                                                                                  \
    /* imm-trans-b is an immediate of the instruction, so it is a template argument ("n"). */               \
    template <int kTransB>                                                                                   \
    __device__ __forceinline__ static void ss_trans_b(float* d, uint64_t desc_a, uint64_t desc_b) {          \
      SPK_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                             \
                    "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " " SPK_WGMMA_D32   \
                    ", %32, %33, p, 1, 1, 0, %35;\n}\n"                                                       \
                    : SPK_WGMMA_D32_OPERANDS(d)                                                              \
                    : "l"(desc_a), "l"(desc_b), "r"(1), "n"(kTransB));                                       \
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
#undef SPK_WGMMA_D64

}  // namespace synthpert::kernels::attn
