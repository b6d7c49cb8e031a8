// Tensor maps (TMA descriptors) in the host emulation of tests/simt/. The
// driver's CUtensorMap is 128 opaque bytes; the emulation's
// cuTensorMapEncodeTiled (simt_cudart.cpp, reached through
// cudaGetDriverEntryPointByVersion as on a device) checks its arguments
// against the driver API's documented rules and writes this layout into
// them, and the emulated cp.async.bulk.tensor
// (include/kernels/attention_pipeline_ptx.cuh) reads it back.
//
// What is emulated: tiled maps of rank 1 to 5, element strides 1, no
// interleave, no swizzle or the 128-byte swizzle, out-of-bounds elements
// filled with zeros. Everything else is refused at encode time.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "tests/simt/simt_runtime.h"

namespace synthpert::simt {

struct EmulatedTensorMap {
  static constexpr uint32_t kMagic = 0x544d4150u;  // "TMAP": encoded by the emulation
  uint32_t magic = 0;
  uint32_t rank = 0;
  uint32_t element_bytes = 0;
  uint32_t swizzle_bytes = 0;  // 0 (none) or 128
  const unsigned char* base = nullptr;
  uint64_t dim[5] = {};     // elements, innermost first
  uint64_t stride[5] = {};  // bytes; stride[0] is the element size
  uint32_t box[5] = {};     // elements per copy along each dimension
};
static_assert(sizeof(EmulatedTensorMap) <= sizeof(CUtensorMap), "fits in the driver's opaque tensor map");

// The emulation's stand-in for the driver's cuTensorMapEncodeTiled.
CUresult encode_tensor_map_tiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* address,
                                 const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
                                 const cuuint32_t* element_strides, CUtensorMapInterleave interleave,
                                 CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2_promotion,
                                 CUtensorMapFloatOOBfill oob_fill);

// cp.async.bulk.tensor.<rank>d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// as the PTX ISA defines it for a tiled map: the box at `coord` (innermost
// first) lands in shared memory at `dst` row after row (a row: box[0]
// elements), elements outside the tensor read as zeros, the 128-byte
// swizzle permuting each row's 16-byte chunks by bits [7, 10) of their
// shared address; then the box's bytes, out-of-bounds ones included, are
// reported to the mbarrier at `bar` as completed transactions. The copy is
// made when issued, by the issuing thread, so ThreadSanitizer orders its
// writes like that thread's own: a reader that did not wait for the phase
// races with them. Compiled into the instrumented device code (this header
// is included by the stand-in PTX wrappers), so those writes are recorded.
inline void tensor_load_tile(void* dst, const void* tensor_map, void* bar, const int32_t* coord, uint32_t rank) {
  EmulatedTensorMap m;
  std::memcpy(&m, tensor_map, sizeof(m));
  const std::string op = "cp.async.bulk.tensor." + std::to_string(rank) + "d";
  if (m.magic != EmulatedTensorMap::kMagic)
    throw KernelFault(op + ": the tensor map was not written by cuTensorMapEncodeTiled");
  if (m.rank != rank) throw KernelFault(op + " on a tensor map of rank " + std::to_string(m.rank));
  const uint32_t row_bytes = m.box[0] * m.element_bytes;
  size_t rows = 1;
  for (uint32_t i = 1; i < rank; ++i) rows *= m.box[i];
  const size_t bytes = rows * row_bytes;
  require_dynamic_shared(dst, bytes, op.c_str());
  const auto saddr = uint32_t(static_cast<unsigned char*>(dst) - shared_window());
  const uint32_t align = m.swizzle_bytes ? 1024 : 128;
  if (saddr % align != 0)
    throw KernelFault(op + ": the shared destination " + std::to_string(saddr) + " must be " + std::to_string(align) +
                      "-byte aligned");
  if (m.swizzle_bytes && row_bytes != m.swizzle_bytes)
    throw KernelFault(op + ": a swizzled box row narrower than the swizzle span is not emulated");
  for (size_t r = 0; r < rows; ++r) {
    bool inside = true;
    int64_t offset = 0;
    size_t rest = r;
    for (uint32_t i = 1; i < rank; ++i) {
      const int64_t x = int64_t(coord[i]) + int64_t(rest % m.box[i]);
      rest /= m.box[i];
      inside = inside && x >= 0 && x < int64_t(m.dim[i]);
      offset += x * int64_t(m.stride[i]);
    }
    for (uint32_t chunk = 0; chunk < row_bytes; chunk += 16) {
      const uint32_t a = saddr + uint32_t(r) * row_bytes + chunk;
      unsigned char* out = shared_window() + (m.swizzle_bytes ? a ^ (((a >> 7) & 7u) << 4) : a);
      const int64_t x0 = int64_t(coord[0]) + chunk / m.element_bytes;
      const int64_t n = 16 / m.element_bytes;
      if (inside && x0 >= 0 && x0 + n <= int64_t(m.dim[0])) {
        std::memcpy(out, m.base + offset + x0 * int64_t(m.element_bytes), 16);
        continue;
      }
      for (int64_t e = 0; e < n; ++e) {
        unsigned char* o = out + e * m.element_bytes;
        if (inside && x0 + e >= 0 && x0 + e < int64_t(m.dim[0]))
          std::memcpy(o, m.base + offset + (x0 + e) * int64_t(m.element_bytes), m.element_bytes);
        else
          std::memset(o, 0, m.element_bytes);
      }
    }
  }
  mbarrier_complete_tx(bar, unsigned(bytes));
}

}  // namespace synthpert::simt
