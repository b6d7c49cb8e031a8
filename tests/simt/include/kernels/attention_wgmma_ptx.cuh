// The host emulation's stand-in for kernels/attention_wgmma_ptx.cuh: the same
// names, implemented from the PTX ISA's definitions of the instructions
// (section "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"), not
// from the kernel's own layout helpers. The emulation build puts this folder
// first on the quoted-include path, so the kernel and its layout header
// (kernels/attention_wgmma.cuh: swizzled tiles, descriptor encoding) are the
// real ones and meet this file only through descriptors and registers.
//
//   Matrix descriptor: bits 0-13 start address >> 4, 16-29 leading-dimension
//     byte offset (LBO) >> 4, 32-45 stride-dimension byte offset (SBO) >> 4,
//     49-51 base offset, 62-63 swizzle mode (1: 128-byte). Only the 128-byte
//     mode with base offset 0 is implemented; anything else faults.
//   128-byte swizzle: the operand is read at shared address a with bits [4,7)
//     XORed with bits [7,10) (a 16-byte chunk of a 128-byte line moves by the
//     line's index within its 1024-byte period).
//   Operand layouts (16-bit elements, 8 to a 16-byte chunk):
//     K-major (trans = 0): element (mn, k) at start + (mn / 8) * SBO +
//       (mn % 8) * 128 + 2k; LBO is not used by the swizzled K-major layout.
//     MN-major (trans = 1): element (mn, k) at start + (mn / 64) * LBO +
//       2 (mn % 64) + (k / 8) * SBO + (k % 8) * 128.
//   Registers of m64nNk16 (thread w * 32 + lane of the warpgroup, g = lane / 4,
//     t = lane % 4): D register 4i + r is row 16w + g + 8 (r / 2), column
//     8i + 2t + r % 2; A register r (two 16-bit values, lower k low) is row
//     16w + g + 8 (r % 2), columns 2t + 8 (r / 2) and + 1.
//   wgmma.fence / commit_group / wait_group and fence.proxy.async: see
//     simt::wgmma_issue and simt::require_async_visible (which also check
//     the .aligned rule across the warpgroup and that no thread touches its
//     accumulators while an operation on them is in flight).
//
// The five forms the kernels issue (the wrappers' names and fixed modifiers):
//   ss:      D(64x64) += A(64x16, K-major, shared) * B(16x64, K-major, shared)
//   ss_n128: D(64x128) += A(64x16, K-major, shared) * B(16x128, K-major, shared)
//   ss_mn_b: D(64x64) += A(64x16, K-major, shared) * B(16x64, MN-major, shared)
//   rs_mn_b: D(64x64) += A(64x16, registers) * B(16x64, MN-major, shared)
//   rs_mn_b_n128: D(64x128) += A(64x16, registers) * B(16x128, MN-major,
//            shared)
// Each lane's operation is queued at the issue and run at the wait that
// retires it (reading shared memory then); every lane's issue checks what it
// can: the same descriptors in every lane of the warp, operands inside the
// launch's dynamic shared memory and visible to the async proxy, and a
// wgmma.fence before it. The first lane of each warp also reads the operands
// at the issue, so under ThreadSanitizer a write that no barrier orders
// against either end of the asynchronous read is a race.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "kernels/attention_ptx.cuh"
#include "tests/simt/simt_runtime.h"

#define SPK_HAVE_WGMMA 1

namespace synthpert::kernels::attn {

namespace emulated_wgmma {

constexpr int kM = 64, kK = 16;  // N is the form's: 64, or 128 for ss_n128
constexpr size_t accumulators(int n) { return size_t(kM) * n / 128; }  // D registers per thread of the warpgroup

struct Operand {
  uint32_t start;  // shared address
  uint32_t lbo, sbo;
  bool mn_major;
};

inline Operand decode(uint64_t desc, bool mn_major) {
  const unsigned swizzle = unsigned(desc >> 62), base_offset = unsigned(desc >> 49) & 7u;
  if (swizzle != 1)
    throw simt::KernelFault("wgmma descriptor: swizzle mode " + std::to_string(swizzle) +
                            " (the emulation implements the 128-byte mode, 1)");
  if (base_offset != 0)
    throw simt::KernelFault("wgmma descriptor: base offset " + std::to_string(base_offset) +
                            " (the emulation implements 0)");
  return Operand{uint32_t(desc & 0x3FFF) << 4, uint32_t((desc >> 16) & 0x3FFF) << 4,
                 uint32_t((desc >> 32) & 0x3FFF) << 4, mn_major};
}

inline uint32_t swizzle128(uint32_t address) { return address ^ (((address >> 7) & 7u) << 4); }

// Shared address of element (mn, k) of a 16-bit operand.
inline uint32_t address_of(const Operand& o, int mn, int k) {
  const uint32_t linear = o.mn_major ? o.start + uint32_t(mn / 64) * o.lbo + uint32_t(mn % 64) * 2 +
                                           uint32_t(k / 8) * o.sbo + uint32_t(k % 8) * 128
                                     : o.start + uint32_t(mn / 8) * o.sbo + uint32_t(mn % 8) * 128 + uint32_t(k) * 2;
  return swizzle128(linear);
}

template <typename T>
float load(const unsigned char* window, const Operand& o, int mn, int k) {
  uint16_t bits;
  std::memcpy(&bits, window + address_of(o, mn, k), 2);
  return emulated::half_to_float<T>(bits);
}

// What the issue checks of an operand (`extent` rows or columns along mn),
// in every lane, before any lane can queue it: its byte span lies in the
// dynamic shared memory and is visible to the async proxy. `read` (the first
// lane of each warp) also reads every element.
template <typename T>
void check_operand(const Operand& o, int extent, bool read) {
  unsigned char* window = simt::shared_window();
  if (!window) throw simt::KernelFault("wgmma operand: the launch has no dynamic shared memory");
  uint32_t lo = UINT32_MAX, hi = 0;
  for (int mn = 0; mn < extent; ++mn)
    for (int k = 0; k < kK; ++k) {
      const uint32_t at = address_of(o, mn, k);
      lo = at < lo ? at : lo;
      hi = at > hi ? at : hi;
    }
  simt::require_dynamic_shared(window + lo, hi + 2 - lo, "wgmma operand");
  simt::require_async_visible(window + lo, hi + 2 - lo);
  if (!read) return;
  float sum = 0.f;
  for (int mn = 0; mn < extent; ++mn)
    for (int k = 0; k < kK; ++k) sum += load<T>(window, o, mn, k);
  volatile float keep = sum;  // the reads must happen
  (void)keep;
}

inline int warp_in_group() { return simt::linear_thread_id() / 32 % 4; }

// What one lane contributes to the warp's issue: descriptors (compared
// across lanes) and, for the register form, its A registers.
struct LaneIssue {
  uint64_t desc_a, desc_b;
  uint32_t a[4];
};

// Gathers the warp's lanes (the .sync of the instruction) and checks the
// descriptors agree.
inline void gather_warp(const LaneIssue& mine, LaneIssue (&all)[32]) {
  simt::warp_gather(&mine, sizeof(mine), all);
  for (const LaneIssue& other : all)
    if (other.desc_a != mine.desc_a || other.desc_b != mine.desc_b)
      throw simt::KernelFault("wgmma: lanes of one warp issue different descriptors");
}

// D += A * B for this thread's n / 2 accumulators (B is 16 x n); a(row, k)
// gives A.
template <typename T, typename AFn>
void accumulate(float* d, AFn a, const Operand& b, int n, int w, int lane) {
  const unsigned char* window = simt::shared_window();
  const int g = lane / 4, t = lane % 4;
  for (int i = 0; i < n / 8; ++i)
    for (int r = 0; r < 4; ++r) {
      const int row = 16 * w + g + 8 * (r / 2), col = 8 * i + 2 * t + r % 2;
      float acc = d[4 * i + r];
      for (int k = 0; k < kK; ++k) acc += a(row, k) * load<T>(window, b, col, k);
      d[4 * i + r] = acc;
    }
}

}  // namespace emulated_wgmma

inline void wgmma_fence() { simt::wgmma_fence(); }
inline void wgmma_commit() { simt::wgmma_commit(); }
template <int kPending>
void wgmma_wait() {
  simt::wgmma_wait(kPending);
}
inline void fence_proxy_async_shared() { simt::fence_proxy_async(); }

// Register pinning is a compiler matter: nothing to do on the host, where
// the queued operation writes the accumulators through a pointer.
template <int N>
void pin_registers(float (&)[N]) {}
template <int N>
void pin_registers(uint32_t (&)[N]) {}
template <int M, int N>
void pin_registers(float (&)[M][N]) {}

template <typename T>
struct Wgmma {
  static void ss(float* d, uint64_t desc_a, uint64_t desc_b) { issue_ss(d, desc_a, desc_b, false, 64); }
  static void ss_n128(float* d, uint64_t desc_a, uint64_t desc_b) { issue_ss(d, desc_a, desc_b, false, 128); }
  static void ss_mn_b(float* d, uint64_t desc_a, uint64_t desc_b) { issue_ss(d, desc_a, desc_b, true, 64); }

  static void rs_mn_b(float* d, const uint32_t a_regs[4], uint64_t desc_b) { issue_rs(d, a_regs, desc_b, 64); }
  static void rs_mn_b_n128(float* d, const uint32_t a_regs[4], uint64_t desc_b) { issue_rs(d, a_regs, desc_b, 128); }

 private:
  static void issue_rs(float* d, const uint32_t a_regs[4], uint64_t desc_b, int n) {
    namespace ew = emulated_wgmma;
    ew::LaneIssue mine{0, desc_b, {a_regs[0], a_regs[1], a_regs[2], a_regs[3]}};
    ew::LaneIssue all[32];
    ew::gather_warp(mine, all);
    const ew::Operand b = ew::decode(desc_b, true);
    const int lane = simt::lane_id(), w = ew::warp_in_group();
    ew::check_operand<T>(b, n, lane == 0);
    // `all` holds the warp's A registers as issued (rows 16w..16w+15); the
    // lane's own must still hold them at the wait, as the hardware reads
    // them until then.
    simt::wgmma_issue({0, desc_b, d, ew::accumulators(n), [d, a_regs, all, b, n, w, lane] {
      if (std::memcmp(a_regs, all[lane].a, sizeof(all[lane].a)) != 0)
        throw simt::KernelFault("wgmma: A registers changed while the wgmma reading them was in flight");
      auto a = [&](int row, int k) {
        const int r = row - 16 * w;  // row within the warp's 16
        const int src_lane = 4 * (r % 8) + (k % 8) / 2, reg = r / 8 + 2 * (k / 8);
        return emulated::half_to_float<T>(uint16_t(all[src_lane].a[reg] >> (16 * (k % 2))));
      };
      ew::accumulate<T>(d, a, b, n, w, lane);
    }});
  }

  static void issue_ss(float* d, uint64_t desc_a, uint64_t desc_b, bool b_mn_major, int n) {
    namespace ew = emulated_wgmma;
    ew::LaneIssue mine{desc_a, desc_b, {}};
    ew::LaneIssue all[32];
    ew::gather_warp(mine, all);
    const ew::Operand a = ew::decode(desc_a, false), b = ew::decode(desc_b, b_mn_major);
    const int lane = simt::lane_id(), w = ew::warp_in_group();
    ew::check_operand<T>(a, ew::kM, lane == 0);
    ew::check_operand<T>(b, n, lane == 0);
    simt::wgmma_issue({desc_a, desc_b, d, ew::accumulators(n), [d, a, b, n, w, lane] {
                         const unsigned char* window = simt::shared_window();
                         ew::accumulate<T>(d, [&](int row, int k) { return ew::load<T>(window, a, row, k); }, b,
                                           n, w, lane);
                       }});
  }
};

}  // namespace synthpert::kernels::attn
