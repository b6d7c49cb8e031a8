// The inline PTX that lets the warpgroups of a warp-specialised sm_90a kernel
// (kernels/attention_fwd_sm90_ws_impl.cuh) hand tiles to each other without
// block-wide barriers: mbarrier objects (one per pipeline stage and
// direction), named barriers (bar.sync / bar.arrive among a subset of the
// block's threads) and setmaxnreg (moving registers from the producer
// warpgroup to the consumers). Kept apart like kernels/attention_ptx.cuh so
// the host emulation (tests/simt/include/kernels/attention_pipeline_ptx.cuh)
// stands in for exactly this file.
//
// Every asm body is compiled only for sm_90a (try_wait.parity and setmaxnreg
// do not exist before); elsewhere the helpers are empty and the kernel traps.
#pragma once

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
