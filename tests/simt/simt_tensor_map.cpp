// The emulation's cuTensorMapEncodeTiled (simt_tensor_map.h): the argument
// rules of the driver API's documentation for what the emulation supports,
// each refusal printed with its reason, as the driver returns only a code.
#include "tests/simt/simt_tensor_map.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace synthpert::simt {
namespace {

CUresult refuse(const std::string& why) {
  std::fprintf(stderr, "simt: cuTensorMapEncodeTiled refused: %s\n", why.c_str());
  return CUDA_ERROR_INVALID_VALUE;
}

uint32_t element_bytes(CUtensorMapDataType type) {
  switch (type) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32: return 4;
    case CU_TENSOR_MAP_DATA_TYPE_UINT64:
    case CU_TENSOR_MAP_DATA_TYPE_INT64:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64: return 8;
    default: return 0;
  }
}

}  // namespace

CUresult encode_tensor_map_tiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* address,
                                 const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
                                 const cuuint32_t* element_strides, CUtensorMapInterleave interleave,
                                 CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2_promotion,
                                 CUtensorMapFloatOOBfill oob_fill) {
  (void)l2_promotion;  // a cache hint; nothing to emulate
  if (!map || reinterpret_cast<uintptr_t>(map) % 64 != 0) return refuse("the tensor map must be 64-byte aligned");
  const uint32_t elem = element_bytes(type);
  if (elem == 0) return refuse("data type " + std::to_string(int(type)) + " is not emulated");
  if (rank < 1 || rank > 5) return refuse("rank must be 1 to 5, got " + std::to_string(rank));
  if (reinterpret_cast<uintptr_t>(address) % 16 != 0) return refuse("the global address must be 16-byte aligned");
  if (interleave != CU_TENSOR_MAP_INTERLEAVE_NONE) return refuse("interleaved layouts are not emulated");
  if (swizzle != CU_TENSOR_MAP_SWIZZLE_NONE && swizzle != CU_TENSOR_MAP_SWIZZLE_128B)
    return refuse("only no swizzle and the 128-byte swizzle are emulated");
  if (oob_fill != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) return refuse("only zero fill is emulated");
  EmulatedTensorMap m;
  m.magic = EmulatedTensorMap::kMagic;
  m.rank = rank;
  m.element_bytes = elem;
  m.swizzle_bytes = swizzle == CU_TENSOR_MAP_SWIZZLE_128B ? 128 : 0;
  m.base = static_cast<const unsigned char*>(address);
  m.stride[0] = elem;
  for (uint32_t i = 0; i < rank; ++i) {
    const std::string dim = "dimension " + std::to_string(i);
    if (dims[i] == 0 || dims[i] > (uint64_t(1) << 32)) return refuse(dim + ": size must be 1 to 2^32");
    if (box[i] == 0 || box[i] > 256) return refuse(dim + ": box size must be 1 to 256");
    if (element_strides[i] != 1) return refuse(dim + ": only element stride 1 is emulated");
    m.dim[i] = dims[i];
    m.box[i] = box[i];
    if (i == 0) continue;
    // strides[i - 1] is the byte stride of dimension i; each must include the
    // extent of the dimension below it (the documentation's padding rule).
    const uint64_t s = strides[i - 1];
    if (s % 16 != 0 || s >= (uint64_t(1) << 40))
      return refuse(dim + ": stride " + std::to_string(s) + " must be a multiple of 16 bytes below 2^40");
    if (s < m.stride[i - 1] * m.dim[i - 1])
      return refuse(dim + ": stride " + std::to_string(s) + " bytes does not include the " +
                    std::to_string(m.dim[i - 1]) + " elements of dimension " + std::to_string(i - 1) + " below it");
    m.stride[i] = s;
  }
  const uint64_t inner_bytes = uint64_t(box[0]) * elem;
  if (inner_bytes % 16 != 0) return refuse("the box's inner dimension must be a multiple of 16 bytes");
  if (m.swizzle_bytes && inner_bytes > m.swizzle_bytes)
    return refuse("the box's inner dimension (" + std::to_string(inner_bytes) +
                  " bytes) must not exceed the swizzle span (128 bytes)");
  std::memset(map, 0, sizeof(CUtensorMap));
  std::memcpy(map, &m, sizeof(m));
  return CUDA_SUCCESS;
}

}  // namespace synthpert::simt
