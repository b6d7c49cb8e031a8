// The inline PTX that lets the warpgroups of a warp-specialised sm_90a kernel
// (kernels/attention_fwd_sm90_ws_impl.cuh) hand tiles to each other without
// block-wide barriers: mbarrier objects (one per pipeline stage and
// direction, with transaction counts for TMA copies), TMA tile copies,
// named barriers (bar.sync / bar.arrive among a subset of the block's
// threads) and setmaxnreg (moving registers from the producer warpgroup to
// the consumers). Kept apart like kernels/attention_ptx.cuh so
// the host emulation (tests/simt/include/kernels/attention_pipeline_ptx.cuh)
// stands in for exactly this file.
//
// Every asm body is compiled only for sm_90a (try_wait.parity and setmaxnreg
// do not exist before); elsewhere the helpers are empty and the kernel traps.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "kernels/attention_ptx.cuh"
#include "kernels/attention_wgmma_ptx.cuh"

namespace synthpert::kernels::attn {

// Sets the arrivals each phase of the mbarrier at `bar` (shared memory)
// expects. Other threads may use it only after a barrier that follows.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, unsigned count) {
#if SPK_HAVE_WGMMA
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
#endif
}

// Orders this thread's earlier mbarrier_init calls before the barriers' use
// by other threads and by the async proxy (TMA's complete_tx); a barrier
// after it publishes them to the block.
__device__ __forceinline__ void fence_mbarrier_init() {
#if SPK_HAVE_WGMMA
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// One arrival, with release semantics at CTA scope: the caller's memory
// accesses before it happen before those of any thread whose wait sees the
// phase complete.
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#if SPK_HAVE_WGMMA
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}

// Returns once the phase of the given parity (the current or the immediately
// preceding phase) has completed; acquire semantics. try_wait itself may
// give up after a time the hardware picks, hence the loop.
__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, uint32_t parity) {
#if SPK_HAVE_WGMMA
  const uint32_t addr = smem_addr(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n"
        ".reg .pred complete;\n"
        "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 complete, [%1], %2;\n"
        "selp.u32 %0, 1, 0, complete;\n"
        "}\n"
        : "=r"(done)
        : "r"(addr), "r"(parity)
        : "memory");
  } while (!done);
#endif
}

// One arrival that also adds `bytes` to the current phase's transaction
// count (tx-count): the phase then completes only once bulk copies have
// reported that many bytes as well (tma_load_3d below). Release semantics as
// mbarrier_arrive.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if SPK_HAVE_WGMMA
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
#endif
}

// A tile copy by the tensor memory accelerator (TMA): the box of the tensor
// map `map` at coordinates (c0, c1, c2), innermost first, lands at `dst`
// (shared memory, 1024-byte aligned for the 128-byte swizzle) in the map's
// swizzled layout, elements outside the tensor as zeros; its bytes, all of
// the box's, complete on the mbarrier `bar`. `map` must live in kernel
// parameter space (a __grid_constant__ parameter) or global memory. One
// thread issues it; the copy runs in the async proxy, so wgmma reads it after
// the mbarrier wait without a proxy fence.
__device__ __forceinline__ void tma_load_3d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1,
                                            int c2) {
#if SPK_HAVE_WGMMA
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
#endif
}

// Named barrier `id` (1-15; 0 is __syncthreads') over `threads` threads, a
// multiple of 32: sync counts the caller and waits for the barrier to
// complete, arrive counts it and goes on.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
#if SPK_HAVE_WGMMA
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
#endif
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
#if SPK_HAVE_WGMMA
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
#endif
}

// Lowers (dec) or raises (inc) the registers per thread of the calling
// warpgroup to kRegisters (24 to 256, a multiple of 8); every thread of the
// warpgroup executes it.
template <int kRegisters>
__device__ __forceinline__ void setmaxnreg_dec() {
  static_assert(kRegisters >= 24 && kRegisters <= 256 && kRegisters % 8 == 0, "setmaxnreg range");
#if SPK_HAVE_WGMMA
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
#endif
}
template <int kRegisters>
__device__ __forceinline__ void setmaxnreg_inc() {
  static_assert(kRegisters >= 24 && kRegisters <= 256 && kRegisters % 8 == 0, "setmaxnreg range");
#if SPK_HAVE_WGMMA
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
#endif
}

}  // namespace synthpert::kernels::attn
