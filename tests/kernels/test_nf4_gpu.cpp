// NF4 kernels ([gpu]): quantize byte-identical to engine/nf4.cpp (bf16, f16
// and f32 weights, padded rows), double quantisation identical to the
// reference, dequantisation identical to the engine's (the same fp32 product
// rounded once to bf16/f16, or kept in f32), and the matmul on both paths (fused up to 16 rows, dequant +
// cuBLAS above) within the tolerance rule of test_attention_common.h against
// the fp64 reference. The peer for the matmul is the torch way: W dequantised
// to the dtype, then a dtype GEMM with fp32 accumulation.
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>
#include <cublas_v2.h>

// engine/nf4.h (torch) before Catch: c10 defines a CHECK macro of its own.
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>

#include "engine/nf4.h"
#include "kernels/nf4.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/reference/kernels/nf4_ref.h"

namespace {

using namespace synthpert::test;
using synthpert::kernels::DType;
namespace k = synthpert::kernels;

struct Shape {
  int64_t out, in, pad;
};
// Dequantisation widths: I % 32 == 0 with 8-aligned strides takes 32 values
// per thread ({1, 64}, {123, 64, pad 8}, ...), {72, 200} 8 (200 % 32 == 8:
// 64-blocks straddle rows), the others one.
const Shape kShapes[] = {{1, 64, 0},   {5, 128, 3},   {123, 64, 8},  {1023, 192, 5}, {64, 5, 2},
                         {128, 123, 0}, {4096, 64, 0}, {300, 4096, 0}, {72, 200, 0}};

k::Nf4CodeTable code_table() {
  k::Nf4CodeTable t;
  const auto& v = synthpert::engine::nf4_code_values();
  std::copy(v.begin(), v.end(), t.value);
  return t;
}

// A padded [O, I + pad] weight: std 0.05, one all-zero block and one large value.
at::Tensor make_weight(const Shape& s, uint32_t seed) {
  at::Tensor w = random_rounded({s.out, s.in + s.pad}, at::kFloat, seed, 0.05).to(at::kFloat);
  at::Tensor flat = w.narrow(1, 0, s.in).contiguous().view({-1});
  if (flat.numel() >= 256) {
    flat.narrow(0, 64, 64).zero_();
    flat[130] = 40.f;
  }
  w.narrow(1, 0, s.in).copy_(flat.view({s.out, s.in}));
  return w;
}

template <typename T>
std::vector<T> download(const DeviceBuffer& b, size_t n) {
  std::vector<T> v(n);
  b.download(v.data(), n * sizeof(T));
  return v;
}

// Device copies of a quantised state (plain or double quantised).
struct DeviceNf4 {
  DeviceBuffer packed, absmax, code, scale, offset;
  explicit DeviceNf4(int64_t n)
      : packed(size_t(n / 2)), absmax(size_t(n / 64) * 4), code(size_t(n / 64)),
        scale(size_t((n / 64 + 255) / 256) * 4 + 4), offset(4) {}
  k::Nf4Scales scales(bool dq) {
    k::Nf4Scales s;
    if (dq) {
      s.absmax_code = code.as<uint8_t>();
      s.absmax_scale = scale.as<float>();
      s.absmax_offset = offset.as<float>();
      const auto& codes8 = synthpert::engine::nf4_absmax_code_values();
      std::copy(codes8.begin(), codes8.end(), s.absmax_codes.value);
    } else {
      s.absmax = absmax.as<float>();
    }
    return s;
  }
  void upload(const synthpert::reference::Nf4State& st) {
    packed.upload(st.packed.data(), st.packed.size());
    if (st.double_quant) {
      code.upload(st.absmax_code.data(), st.absmax_code.size());
      scale.upload(st.absmax_scale.data(), st.absmax_scale.size() * 4);
      offset.upload(&st.absmax_offset, 4);
    } else {
      absmax.upload(st.absmax.data(), st.absmax.size() * 4);
    }
  }
};

std::vector<float> floats(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void quantize_case(const Shape& s, at::ScalarType wdt, bool dq) {
  const DType dtype = wdt == at::kFloat ? DType::kF32 : wdt == at::kBFloat16 ? DType::kBF16 : DType::kF16;
  INFO("O=" << s.out << " I=" << s.in << " pad=" << s.pad << " weight dtype=" << at::toString(wdt) << " dq=" << dq);
  const at::Tensor stored = make_weight(s, 5 + uint32_t(s.in)).to(wdt).contiguous();
  const int64_t n = s.out * s.in;
  DeviceBuffer w(size_t(stored.numel() * stored.element_size()));
  w.upload(stored.data_ptr(), w.bytes());
  DeviceNf4 q(n);
  DeviceBuffer ws(std::max<size_t>(1, k::nf4_quantize_workspace_bytes(s.out, s.in, dq)));
  k::Nf4QuantizeArgs a;
  a.dtype = dtype;
  a.out_features = s.out;
  a.in_features = s.in;
  a.weight = w.get();
  a.weight_row_stride = s.in + s.pad;
  a.codes = code_table();
  a.packed = q.packed.as<uint8_t>();
  a.scales = q.scales(dq);
  a.workspace = ws.get();
  k::nf4_quantize(a, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "nf4_quantize");

  const auto engine = synthpert::engine::nf4_quantize(stored.narrow(1, 0, s.in));
  const auto packed = download<uint8_t>(q.packed, size_t(n / 2));
  CHECK(std::memcmp(packed.data(), engine.packed.data_ptr<uint8_t>(), packed.size()) == 0);
  if (!dq) {
    const auto absmax = download<float>(q.absmax, size_t(n / 64));
    CHECK(std::memcmp(absmax.data(), engine.absmax.data_ptr<float>(), absmax.size() * 4) == 0);
    return;
  }
  const auto ref = synthpert::reference::nf4_quantize_ref(floats(stored), s.out, s.in, s.in + s.pad,
                                                          synthpert::engine::nf4_code_values(), true,
                                                          synthpert::engine::nf4_absmax_code_values());
  const float offset = download<float>(q.offset, 1)[0];
  // The mean is an fp64 sum in another order: equal after rounding to fp32
  // except at a rounding tie; then codes may legitimately differ.
  CHECK(std::abs(offset - ref.absmax_offset) <= std::abs(ref.absmax_offset) * 1.2e-7f);
  if (offset == ref.absmax_offset) {
    CHECK(download<uint8_t>(q.code, ref.absmax_code.size()) == ref.absmax_code);
    CHECK(download<float>(q.scale, ref.absmax_scale.size()) == ref.absmax_scale);
  }
}

// A float32 [O, I] output with padded rows: the padding holds a signalling
// NaN the kernel cannot produce, checked bit for bit after the launch.
struct PaddedF32 {
  static constexpr int32_t kPoison = 0x7FA00011;
  int64_t rows, width, ld;
  at::Tensor host;
  DeviceBuffer device;
  PaddedF32(int64_t r, int64_t w, int64_t pad)
      : rows(r), width(w), ld(w + pad), host(at::empty({r, w + pad}, at::kFloat)), device(size_t(r * (w + pad)) * 4) {
    host.view(at::kInt).fill_(kPoison);
    device.upload(host.data_ptr(), size_t(rows * ld) * 4);
  }
  at::Tensor download() {
    device.download(host.data_ptr(), size_t(rows * ld) * 4);
    if (ld > width) {
      INFO("padding elements the kernel overwrote");
      CHECK(host.view(at::kInt).narrow(1, width, ld - width).ne(kPoison).sum().item<int64_t>() == 0);
    }
    return host.narrow(1, 0, width).to(at::kDouble);
  }
};

void dequantize_case(const Shape& s, DType dtype, bool dq) {
  const at::ScalarType dt = dtype == DType::kF32 ? at::kFloat : torch_dtype(dtype);
  INFO("O=" << s.out << " I=" << s.in << " pad=" << s.pad << " dtype=" << at::toString(dt) << " dq=" << dq);
  const at::Tensor w = make_weight(s, 9).narrow(1, 0, s.in);
  const auto st = synthpert::reference::nf4_quantize_ref(floats(w), s.out, s.in, s.in, synthpert::engine::nf4_code_values(),
                                                         dq, synthpert::engine::nf4_absmax_code_values());
  const int64_t n = s.out * s.in;
  DeviceNf4 q(n);
  q.upload(st);
  // bf16/f16 outputs use the attention tests' poisoned strided buffer.
  std::unique_ptr<StridedDeviceTensor> half_out;
  std::unique_ptr<PaddedF32> f32_out;
  if (dtype == DType::kF32) {
    f32_out = std::make_unique<PaddedF32>(s.out, s.in, s.pad);
  } else {
    half_out = std::make_unique<StridedDeviceTensor>(s.out, 1, s.in, s.in + s.pad, s.in, dt);
    half_out->upload_poison();
  }
  k::Nf4DequantizeArgs a;
  a.dtype = dtype;
  a.out_features = s.out;
  a.in_features = s.in;
  a.packed = q.packed.as<uint8_t>();
  a.scales = q.scales(dq);
  a.codes = code_table();
  a.out = f32_out ? f32_out->device.get() : half_out->device.get();
  a.out_row_stride = s.in + s.pad;
  k::nf4_dequantize(a, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "nf4_dequantize");
  const at::Tensor got = f32_out ? f32_out->download() : half_out->download().view({s.out, s.in});
  at::Tensor want;
  if (dq) {
    want = at::tensor(synthpert::reference::nf4_dequantize_ref(st, synthpert::engine::nf4_code_values(),
                                                               synthpert::engine::nf4_absmax_code_values()))
               .view({s.out, s.in});
  } else {
    // The engine's own dequantisation of the same bytes, in the dtype.
    synthpert::engine::Nf4Weight ew;
    ew.out_features = s.out;
    ew.in_features = s.in;
    ew.packed = at::from_blob(const_cast<uint8_t*>(st.packed.data()), {n / 2}, at::kByte);
    ew.absmax = at::tensor(st.absmax);
    ew.dtype = dt;
    want = synthpert::engine::nf4_dequantize(ew);
  }
  CHECK(at::equal(got, want.to(dt).to(at::kDouble)));
  if (half_out && s.pad > 0)
    CHECK(at::isnan(half_out->host_storage.as_strided({s.out, s.pad}, {s.in + s.pad, 1}, s.in)).all().item<bool>());
}

void matmul_case(int64_t N, const Shape& s, DType dtype, bool dq, cublasHandle_t handle) {
  const at::ScalarType dt = torch_dtype(dtype);
  const int64_t O = s.out, I = s.in, pad = s.pad;
  INFO("N=" << N << " O=" << O << " I=" << I << " pad=" << pad << " dtype=" << at::toString(dt) << " dq=" << dq);
  const at::Tensor w = make_weight({O, I, 0}, 13);
  const auto st = synthpert::reference::nf4_quantize_ref(floats(w), O, I, I, synthpert::engine::nf4_code_values(), dq,
                                                         synthpert::engine::nf4_absmax_code_values());
  const auto wd = synthpert::reference::nf4_dequantize_ref(st, synthpert::engine::nf4_code_values(),
                                                           synthpert::engine::nf4_absmax_code_values());
  const at::Tensor x = random_rounded({N, I}, dt, 14);
  const at::Tensor ref = at::tensor(synthpert::reference::nf4_matmul_ref(to_vector(x), wd, N, O, I)).view({N, O});
  const at::Tensor w_dt = at::tensor(wd).view({O, I}).to(dt).to(at::kFloat);
  const at::Tensor peer = rnd(x.to(at::kFloat).mm(w_dt.t()), dt).to(at::kDouble);

  DeviceNf4 q(O * I);
  q.upload(st);
  StridedDeviceTensor x_(N, 1, I, I + pad, I, dt), y_(N, 1, O, O + pad, O, dt);
  x_.upload(x.view({N, 1, I}));
  y_.upload_poison();
  DeviceBuffer ws(std::max<size_t>(1, k::nf4_matmul_workspace_bytes(N, O, I)));
  k::Nf4MatmulArgs a;
  a.dtype = dtype;
  a.rows = N;
  a.out_features = O;
  a.in_features = I;
  a.x = x_.device.get();
  a.x_row_stride = I + pad;
  a.packed = q.packed.as<uint8_t>();
  a.scales = q.scales(dq);
  a.codes = code_table();
  a.y = y_.device.get();
  a.y_row_stride = O + pad;
  a.workspace = ws.get();
  a.cublas = handle;
  k::nf4_matmul(a, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "nf4_matmul");
  check_within_peer("y", max_abs_err(y_.download().view({N, O}), ref), max_abs_err(peer, ref),
                    half_ulp(dt, max_abs(ref)));
}

}  // namespace

TEST_CASE("nf4_quantize is byte-identical to engine::nf4_quantize", "[gpu][nf4]") {
  for (const Shape& s : kShapes)
    for (at::ScalarType wdt : {at::kBFloat16, at::kHalf, at::kFloat}) quantize_case(s, wdt, false);
}

TEST_CASE("nf4_quantize with double quantisation matches the reference", "[gpu][nf4]") {
  for (const Shape& s : kShapes) quantize_case(s, at::kBFloat16, true);
}

TEST_CASE("nf4_dequantize equals the engine's dequantisation", "[gpu][nf4]") {
  for (const Shape& s : kShapes)
    for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32})
      for (bool dq : {false, true}) dequantize_case(s, dtype, dq);
}

TEST_CASE("nf4_matmul matches the reference on the fused and the cuBLAS path", "[gpu][nf4]") {
  cublasHandle_t handle = nullptr;
  REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
  const Shape shapes[] = {{123, 64, 0}, {64, 5, 3}, {256, 4096, 8}, {5, 192, 0}, {1023, 128, 1}};
  for (int64_t N : {1, 5, 16, 17, 123})
    for (const Shape& s : shapes)
      for (DType dtype : {DType::kBF16, DType::kF16}) matmul_case(N, s, dtype, N == 5 || N == 17, handle);
  cublasDestroy(handle);
}

#endif  // SYNTHPERT_NO_KERNELS
