// The host emulation's stand-in for kernels/attention_pipeline_ptx.cuh: the
// same names, on the runtime's mbarrier and named-barrier emulation and the
// tensor-map copies of tests/simt/simt_tensor_map.h
// (tests/simt/simt_runtime.h says what each checks). setmaxnreg changes
// nothing a fiber can observe and is checked only for its operand.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "kernels/attention_ptx.cuh"
#include "kernels/attention_wgmma_ptx.cuh"
#include "tests/simt/simt_tensor_map.h"

namespace synthpert::kernels::attn {

inline void mbarrier_init(uint64_t* bar, unsigned count) { simt::mbarrier_init(bar, count); }
inline void fence_mbarrier_init() {}  // the emulated barriers are visible at init
inline void mbarrier_arrive(uint64_t* bar) { simt::mbarrier_arrive(bar); }
inline void mbarrier_wait_parity(uint64_t* bar, uint32_t parity) { simt::mbarrier_wait_parity(bar, parity); }
inline void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) { simt::mbarrier_arrive_expect_tx(bar, bytes); }
inline void tma_load_3d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1, int c2) {
  const int32_t coord[3] = {c0, c1, c2};
  simt::tensor_load_tile(dst, map, bar, coord, 3);
}
inline void named_barrier_sync(int id, int threads) { simt::named_barrier_sync(id, threads); }
inline void named_barrier_arrive(int id, int threads) { simt::named_barrier_arrive(id, threads); }
template <int kRegisters>
void setmaxnreg_dec() {
  static_assert(kRegisters >= 24 && kRegisters <= 256 && kRegisters % 8 == 0, "setmaxnreg range");
}
template <int kRegisters>
void setmaxnreg_inc() {
  static_assert(kRegisters >= 24 && kRegisters <= 256 && kRegisters % 8 == 0, "setmaxnreg range");
}

}  // namespace synthpert::kernels::attn
