// kernels/nf4.h's launchers emulated on host memory with the references of
// tests/reference/kernels/nf4_ref (see host_attention.cpp for why). Plain
// fp32 scales only (the engine does not double-quantise); the matmul
// requires the workspace the launcher requires past kNf4FusedMaxRows rows.
#include <algorithm>
#include <stdexcept>

#include "kernels/nf4.h"
#include "tests/engine_host/host_memory.h"
#include "tests/reference/kernels/nf4_ref.h"

namespace synthpert::kernels {
namespace {

std::array<float, 16> codes_of(const Nf4CodeTable& t) {
  std::array<float, 16> c{};
  std::copy(t.value, t.value + 16, c.begin());
  if (c[15] == 0.f) throw std::invalid_argument("host nf4: the code table is empty");
  return c;
}

// Plain scales need no dynamic code; the references read it only when double quantising.
const std::array<float, 256> kNoAbsmaxCodes{};

reference::Nf4State state_of(const uint8_t* packed, const Nf4Scales& s, int64_t n) {
  if (s.double_quant()) throw std::invalid_argument("host nf4: double-quantised scales are not emulated");
  reference::Nf4State st;
  st.packed.assign(packed, packed + n / 2);
  st.absmax.assign(s.absmax, s.absmax + n / kNf4Block);
  return st;
}

}  // namespace

size_t nf4_matmul_workspace_bytes(int64_t, int64_t out_features, int64_t in_features) {
  return static_cast<size_t>(out_features * in_features) * 2;
}

void nf4_quantize(const Nf4QuantizeArgs& a, cudaStream_t) {
  if (a.scales.double_quant()) throw std::invalid_argument("host nf4: double quantisation is not emulated");
  const int64_t O = a.out_features, I = a.in_features;
  std::vector<float> w(static_cast<size_t>((O - 1) * a.weight_row_stride + I));
  for (int64_t r = 0; r < O; ++r)
    for (int64_t c = 0; c < I; ++c)
      w[r * a.weight_row_stride + c] = static_cast<float>(host_emulation::load(a.weight, r * a.weight_row_stride + c, a.dtype));
  const auto st = reference::nf4_quantize_ref(w, O, I, a.weight_row_stride, codes_of(a.codes), false, kNoAbsmaxCodes);
  std::copy(st.packed.begin(), st.packed.end(), a.packed);
  std::copy(st.absmax.begin(), st.absmax.end(), a.scales.absmax);
}

void nf4_dequantize(const Nf4DequantizeArgs& a, cudaStream_t) {
  const int64_t O = a.out_features, I = a.in_features;
  const auto w = reference::nf4_dequantize_ref(state_of(a.packed, a.scales, O * I), codes_of(a.codes), kNoAbsmaxCodes);
  for (int64_t r = 0; r < O; ++r)
    for (int64_t c = 0; c < I; ++c) host_emulation::store(a.out, r * a.out_row_stride + c, a.dtype, w[r * I + c]);
}

void nf4_matmul(const Nf4MatmulArgs& a, cudaStream_t) {
  if (a.rows > kNf4FusedMaxRows && a.workspace == nullptr)
    throw std::invalid_argument("host nf4: more than kNf4FusedMaxRows rows need a workspace");
  const int64_t N = a.rows, O = a.out_features, I = a.in_features;
  const auto w = reference::nf4_dequantize_ref(state_of(a.packed, a.scales, O * I), codes_of(a.codes), kNoAbsmaxCodes);
  const auto x = host_emulation::gather_rows(a.x, a.x_row_stride, N, I, a.dtype);
  const auto y = reference::nf4_matmul_ref(x, w, N, O, I);
  host_emulation::scatter_rows(y, a.y, a.y_row_stride, N, O, a.dtype);
}

}  // namespace synthpert::kernels
