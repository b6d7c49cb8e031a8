// kernels/nf4.h's launchers emulated on host memory with the references of
// tests/reference/kernels/nf4_ref (see host_attention.cpp for why), plain and
// double-quantised scales (the 8-bit code from the arguments, as the kernels
// take it); quantisation with double quantisation and the matmul past
// kNf4FusedMaxRows rows require the workspaces the launchers require.
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

std::array<float, 256> absmax_codes_of(const Nf4Scales& s) {
  std::array<float, 256> c{};
  std::copy(s.absmax_codes.value, s.absmax_codes.value + 256, c.begin());
  if (s.double_quant() && c[255] == 0.f) throw std::invalid_argument("host nf4: the 8-bit code table is empty");
  return c;
}

int64_t scale_groups(int64_t blocks) { return (blocks + kNf4AbsmaxBlock - 1) / kNf4AbsmaxBlock; }

reference::Nf4State state_of(const uint8_t* packed, const Nf4Scales& s, int64_t n) {
  reference::Nf4State st;
  const int64_t nb = n / kNf4Block;
  st.packed.assign(packed, packed + n / 2);
  st.double_quant = s.double_quant();
  if (!st.double_quant) {
    st.absmax.assign(s.absmax, s.absmax + nb);
    return st;
  }
  st.absmax_code.assign(s.absmax_code, s.absmax_code + nb);
  st.absmax_scale.assign(s.absmax_scale, s.absmax_scale + scale_groups(nb));
  st.absmax_offset = *s.absmax_offset;
  return st;
}

}  // namespace

size_t nf4_quantize_workspace_bytes(int64_t out_features, int64_t in_features, bool double_quant) {
  return double_quant ? static_cast<size_t>(out_features * in_features / kNf4Block) * sizeof(float) : 0;
}

size_t nf4_matmul_workspace_bytes(int64_t, int64_t out_features, int64_t in_features) {
  return static_cast<size_t>(out_features * in_features) * 2;
}

void nf4_quantize(const Nf4QuantizeArgs& a, cudaStream_t) {
  const bool dq = a.scales.double_quant();
  if (dq && a.workspace == nullptr) throw std::invalid_argument("host nf4: double quantisation needs a workspace");
  const int64_t O = a.out_features, I = a.in_features;
  std::vector<float> w(static_cast<size_t>((O - 1) * a.weight_row_stride + I));
  for (int64_t r = 0; r < O; ++r)
    for (int64_t c = 0; c < I; ++c)
      w[r * a.weight_row_stride + c] = static_cast<float>(host_emulation::load(a.weight, r * a.weight_row_stride + c, a.dtype));
  const auto st =
      reference::nf4_quantize_ref(w, O, I, a.weight_row_stride, codes_of(a.codes), dq, absmax_codes_of(a.scales));
  std::copy(st.packed.begin(), st.packed.end(), a.packed);
  if (!dq) {
    std::copy(st.absmax.begin(), st.absmax.end(), a.scales.absmax);
    return;
  }
  std::copy(st.absmax_code.begin(), st.absmax_code.end(), a.scales.absmax_code);
  std::copy(st.absmax_scale.begin(), st.absmax_scale.end(), a.scales.absmax_scale);
  *a.scales.absmax_offset = st.absmax_offset;
}

void nf4_dequantize(const Nf4DequantizeArgs& a, cudaStream_t) {
  const int64_t O = a.out_features, I = a.in_features;
  const auto w = reference::nf4_dequantize_ref(state_of(a.packed, a.scales, O * I), codes_of(a.codes),
                                               absmax_codes_of(a.scales));
  for (int64_t r = 0; r < O; ++r)
    for (int64_t c = 0; c < I; ++c) host_emulation::store(a.out, r * a.out_row_stride + c, a.dtype, w[r * I + c]);
}

void nf4_matmul(const Nf4MatmulArgs& a, cudaStream_t) {
  if (a.rows > kNf4FusedMaxRows && a.workspace == nullptr)
    throw std::invalid_argument("host nf4: more than kNf4FusedMaxRows rows need a workspace");
  const int64_t N = a.rows, O = a.out_features, I = a.in_features;
  const auto w = reference::nf4_dequantize_ref(state_of(a.packed, a.scales, O * I), codes_of(a.codes),
                                               absmax_codes_of(a.scales));
  const auto x = host_emulation::gather_rows(a.x, a.x_row_stride, N, I, a.dtype);
  const auto y = reference::nf4_matmul_ref(x, w, N, O, I);
  host_emulation::scatter_rows(y, a.y, a.y_row_stride, N, O, a.dtype);
}

}  // namespace synthpert::kernels
