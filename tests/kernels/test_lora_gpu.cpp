// LoRA kernels against the fp64 reference with the tolerance rule of
// test_attention_common.h ([gpu]).
//   training: forward (y, xa) and backward (dx, dA, dB; plain and
//     accumulating) on odd shapes, padded x/y/dy/dx rows and W, A, B stored
//     as slices of wider matrices (a fused projection weight). The peer is
//     PEFT's computation in eager PyTorch in the dtype: base = x W^T, lora =
//     (x A^T) B^T * s, y = base + lora, every op rounded, autograd likewise
//     (the dtype gradients of A and B rounded too).
//   serving: several adapters in one batch (segments, scattered rows, rows
//     without an adapter, which must stay bit-identical), padded x/y and
//     adapter pools with gaps between adapters; an out-of-range index turns its
//     row into NaN. The peer loops over adapters in the dtype as above.
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>
#include <cublas_v2.h>

#include <catch2/catch.hpp>

#include "kernels/lora.h"
#include "tests/kernels/ref_test_util.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/reference/kernels/lora_ref.h"

namespace {

using namespace synthpert::test;
using synthpert::kernels::DType;
using synthpert::reference::LoraDims;
namespace k = synthpert::kernels;

struct TrainCase {
  LoraDims d;
  int64_t pad;  // extra elements per row of every matrix (0: contiguous)
  bool accumulate;
};

// A [rows, cols] matrix stored with `pad` extra (NaN) elements per row.
StridedDeviceTensor matrix(int64_t rows, int64_t cols, int64_t pad, at::ScalarType dt) {
  return StridedDeviceTensor(rows, 1, cols, cols + pad, cols, dt);
}

at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat); }

void train_case(const TrainCase& c, DType dtype, cublasHandle_t handle) {
  const at::ScalarType dt = torch_dtype(dtype);
  const LoraDims& d = c.d;
  const int64_t N = d.rows, K = d.in, O = d.out, R = d.rank, pad = c.pad;
  INFO("N=" << N << " K=" << K << " O=" << O << " R=" << R << " pad=" << pad << " accumulate=" << c.accumulate
            << " dtype=" << at::toString(dt));
  const double s = 2.0;
  const at::Tensor x = random_rounded({N, K}, dt, 600), w = random_rounded({O, K}, dt, 601, 0.05),
                   a = random_rounded({R, K}, dt, 602, 0.05), b = random_rounded({O, R}, dt, 603, 0.05),
                   dy = random_rounded({N, O}, dt, 604);
  const auto fr = synthpert::reference::lora_forward_ref(d, vector_of(x), vector_of(w), vector_of(a), vector_of(b), s);
  const auto gr = synthpert::reference::lora_backward_ref(d, vector_of(x), vector_of(w), vector_of(a), vector_of(b),
                                                          s, vector_of(dy));

  StridedDeviceTensor x_ = matrix(N, K, pad, dt), w_ = matrix(O, K, pad, dt), a_ = matrix(R, K, pad, dt),
                      b_ = matrix(O, R, pad, dt), y_ = matrix(N, O, pad, dt), dy_ = matrix(N, O, pad, dt),
                      dx_ = matrix(N, K, pad, dt), xa_ = matrix(N, R, 0, dt);
  x_.upload(x.view({N, 1, K}));
  w_.upload(w.view({O, 1, K}));
  a_.upload(a.view({R, 1, K}));
  b_.upload(b.view({O, 1, R}));
  dy_.upload(dy.view({N, 1, O}));
  y_.upload_poison();
  dx_.upload_poison();
  xa_.upload_poison();
  DeviceBuffer ga(size_t(R * K) * 4), gb(size_t(O * R) * 4), ws(k::lora_backward_workspace_bytes(N, R));
  const at::Tensor ga0 = c.accumulate ? at::randn({R, K}) : at::full({R, K}, NAN),
                   gb0 = c.accumulate ? at::randn({O, R}) : at::full({O, R}, NAN);
  ga.upload(ga0.data_ptr(), ga.bytes());
  gb.upload(gb0.data_ptr(), gb.bytes());

  k::LoraForwardArgs f;
  f.dtype = dtype;
  f.rows = N;
  f.in_features = K;
  f.out_features = O;
  f.rank = R;
  f.scale = float(s);
  f.x = x_.device.get();
  f.x_row_stride = K + pad;
  f.weight = w_.device.get();
  f.weight_row_stride = K + pad;
  f.lora_a = a_.device.get();
  f.lora_a_row_stride = K + pad;
  f.lora_b = b_.device.get();
  f.lora_b_row_stride = R + pad;
  f.y = y_.device.get();
  f.y_row_stride = O + pad;
  f.xa = xa_.device.get();
  f.cublas = handle;
  k::lora_forward(f, nullptr);
  k::LoraBackwardArgs bw;
  bw.dtype = dtype;
  bw.rows = N;
  bw.in_features = K;
  bw.out_features = O;
  bw.rank = R;
  bw.scale = float(s);
  bw.x = f.x;
  bw.x_row_stride = f.x_row_stride;
  bw.weight = f.weight;
  bw.weight_row_stride = f.weight_row_stride;
  bw.lora_a = f.lora_a;
  bw.lora_a_row_stride = f.lora_a_row_stride;
  bw.lora_b = f.lora_b;
  bw.lora_b_row_stride = f.lora_b_row_stride;
  bw.xa = f.xa;
  bw.dy = dy_.device.get();
  bw.dy_row_stride = O + pad;
  bw.dx = dx_.device.get();
  bw.dx_row_stride = K + pad;
  bw.grad_a = ga.as<float>();
  bw.grad_b = gb.as<float>();
  bw.accumulate = c.accumulate;
  bw.workspace = ws.get();
  bw.cublas = handle;
  k::lora_backward(bw, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "lora forward/backward");

  auto download_f32 = [](const DeviceBuffer& buf, at::IntArrayRef shape) {
    at::Tensor t = at::empty(shape, at::kFloat);
    buf.download(t.data_ptr(), size_t(t.numel()) * 4);
    return t.to(at::kDouble);
  };
  const at::Tensor got_ga = download_f32(ga, {R, K}) - (c.accumulate ? ga0.to(at::kDouble) : at::zeros({R, K}, at::kDouble));
  const at::Tensor got_gb = download_f32(gb, {O, R}) - (c.accumulate ? gb0.to(at::kDouble) : at::zeros({O, R}, at::kDouble));

  // Peer: eager PyTorch in the dtype, each op rounded.
  const at::Tensor base = rnd(f32(x).mm(f32(w).t()), dt), xa = rnd(f32(x).mm(f32(a).t()), dt);
  const at::Tensor low = rnd(rnd(xa.mm(f32(b).t()), dt) * s, dt), y = rnd(base + low, dt);
  const at::Tensor d_low = rnd(f32(dy) * s, dt);
  const at::Tensor p_gb = rnd(d_low.t().mm(xa), dt), dxa = rnd(d_low.mm(f32(b)), dt);
  const at::Tensor p_ga = rnd(dxa.t().mm(f32(x)), dt);
  const at::Tensor p_dx = rnd(rnd(f32(dy).mm(f32(w)), dt) + rnd(dxa.mm(f32(a)), dt), dt);

  const at::Tensor ref_y = tensor_of(fr.y_NO, {N, O}), ref_xa = tensor_of(fr.xa_NR, {N, R});
  const at::Tensor ref_dx = tensor_of(gr.dx_NK, {N, K}), ref_ga = tensor_of(gr.da_RK, {R, K}),
                   ref_gb = tensor_of(gr.db_OR, {O, R});
  auto check = [&](const char* name, const at::Tensor& got, const at::Tensor& peer, const at::Tensor& ref) {
    check_within_peer(name, max_abs_err(got, ref), max_abs_err(peer, ref), half_ulp(dt, max_abs(ref)));
  };
  check("y", y_.download().view({N, O}), y, ref_y);
  check("xa", xa_.download().view({N, R}), xa, ref_xa);
  check("dx", dx_.download().view({N, K}), p_dx, ref_dx);
  check("dA", got_ga, p_ga, ref_ga);
  check("dB", got_gb, p_gb, ref_gb);
}

struct MultiCase {
  LoraDims d;
  int64_t adapters, pad;
  bool bad_index;  // one row names adapter M (out of range)
};

void multi_case(const MultiCase& c, DType dtype) {
  const at::ScalarType dt = torch_dtype(dtype);
  const LoraDims& d = c.d;
  const int64_t N = d.rows, K = d.in, O = d.out, R = d.rank, M = c.adapters, pad = c.pad;
  INFO("N=" << N << " K=" << K << " O=" << O << " R=" << R << " M=" << M << " pad=" << pad
            << " dtype=" << at::toString(dt));
  const at::Tensor x = random_rounded({N, K}, dt, 700), a_all = random_rounded({M, R, K}, dt, 701, 0.05),
                   b_all = random_rounded({M, O, R}, dt, 702, 0.05), y0 = random_rounded({N, O}, dt, 703);
  std::vector<double> scales;
  std::vector<float> scales_f;
  for (int64_t i = 0; i < M; ++i) {
    scales.push_back(0.5 + double(i));
    scales_f.push_back(float(scales.back()));
  }
  std::vector<int32_t> idx(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) idx[size_t(n)] = (n % 7 == 6) ? -1 : int32_t((n / 3 + n % 2) % M);
  const int64_t bad_row = N > 2 ? 2 : -1;
  std::vector<int32_t> ref_idx = idx;
  if (c.bad_index && bad_row >= 0) {
    idx[size_t(bad_row)] = int32_t(M);
    ref_idx[size_t(bad_row)] = -1;  // compared separately
  }
  const auto ref = synthpert::reference::lora_multi_ref(d, M, vector_of(x), vector_of(a_all), vector_of(b_all),
                                                        scales, ref_idx, vector_of(y0));

  // Adapter pools: A_all rows padded, and a gap of 40 elements between adapters.
  const int64_t a_row = K + pad, b_row = R + pad;
  const int64_t a_adapter = R * a_row + 40, b_adapter = O * b_row + 40;
  StridedDeviceTensor x_ = matrix(N, K, pad, dt), y_ = matrix(N, O, pad, dt);
  StridedDeviceTensor a_(M, R, K, a_adapter, a_row, dt), b_(M, O, R, b_adapter, b_row, dt);
  x_.upload(x.view({N, 1, K}));
  y_.upload(y0.view({N, 1, O}));
  a_.upload(a_all);
  b_.upload(b_all);
  DeviceBuffer sc(size_t(M) * 4), ix(size_t(N) * 4), ws(k::lora_multi_workspace_bytes(N, R));
  sc.upload(scales_f.data(), sc.bytes());
  ix.upload(idx.data(), ix.bytes());

  k::LoraMultiArgs m;
  m.dtype = dtype;
  m.rows = N;
  m.in_features = K;
  m.out_features = O;
  m.rank = R;
  m.num_adapters = M;
  m.x = x_.device.get();
  m.x_row_stride = K + pad;
  m.lora_a = a_.device.get();
  m.lora_a_adapter_stride = a_adapter;
  m.lora_a_row_stride = a_row;
  m.lora_b = b_.device.get();
  m.lora_b_adapter_stride = b_adapter;
  m.lora_b_row_stride = b_row;
  m.scales = sc.as<float>();
  m.row_adapter = ix.as<int32_t>();
  m.y = y_.device.get();
  m.y_row_stride = O + pad;
  m.workspace = ws.get();
  k::lora_multi_apply(m, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "lora_multi_apply");

  at::Tensor got = y_.download().view({N, O});
  // Peer: a loop over adapters in the dtype.
  at::Tensor peer = f32(y0);
  const at::Tensor rows = at::tensor(ref_idx, at::kInt);
  for (int64_t i = 0; i < M; ++i) {
    const at::Tensor low =
        rnd(rnd(rnd(f32(x).mm(f32(a_all[i]).t()), dt).mm(f32(b_all[i]).t()), dt) * scales[size_t(i)], dt);
    peer = at::where(rows.eq(int32_t(i)).unsqueeze(1), rnd(peer + low, dt), peer);
  }
  for (int64_t n = 0; n < N; ++n) {
    if (idx[size_t(n)] == -1) CHECK(at::equal(got[n], y0[n]));
    if (n == bad_row && c.bad_index) {
      CHECK(at::isnan(got[n]).all().item<bool>());
      got[n].copy_(y0[n]);  // excluded from the error below (the reference left it as y0)
      peer[n].copy_(y0[n]);
    }
  }
  const at::Tensor ref_y = tensor_of(ref, {N, O});
  check_within_peer("y", max_abs_err(got, ref_y), max_abs_err(peer, ref_y), half_ulp(dt, max_abs(ref_y)));
}

}  // namespace

TEST_CASE("lora training forward and backward match the reference", "[gpu][lora]") {
  cublasHandle_t handle = nullptr;
  REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
  const TrainCase cases[] = {{{1, 64, 96, 8}, 0, false},   {{5, 123, 77, 4}, 3, true},
                             {{123, 256, 200, 16}, 8, false}, {{1023, 128, 64, 1}, 0, true},
                             {{64, 1000, 700, 32}, 5, false}};
  for (const TrainCase& c : cases)
    for (DType dtype : {DType::kBF16, DType::kF16}) train_case(c, dtype, handle);
  cublasDestroy(handle);
}

TEST_CASE("lora multi-adapter serving matches the reference", "[gpu][lora]") {
  const MultiCase cases[] = {{{1, 64, 96, 8}, 1, 0, false},       {{5, 123, 77, 4}, 3, 3, true},
                             {{123, 4096, 1000, 16}, 3, 8, false}, {{1023, 64, 77, 64}, 4, 0, true},
                             {{17, 128, 256, 1}, 2, 1, false}};
  for (const MultiCase& c : cases)
    for (DType dtype : {DType::kBF16, DType::kF16}) multi_case(c, dtype);
}

#endif  // SYNTHPERT_NO_KERNELS
