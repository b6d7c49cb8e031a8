// RMSNorm kernels against the fp64 reference with the tolerance rule of
// test_attention_common.h ([gpu]); shapes from test_rowwise_peer.h.
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/rmsnorm.h"
#include "tests/kernels/ref_test_util.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/kernels/test_rowwise_peer.h"
#include "tests/reference/kernels/rmsnorm_ref.h"

namespace {

using namespace synthpert::test;
using synthpert::kernels::DType;

// A [rows, width] device view (rows padded by 24 NaN elements when strided).
StridedDeviceTensor rows_tensor(const RowsCase& c, at::ScalarType dt) {
  return StridedDeviceTensor(c.rows, 1, c.width, c.strided ? c.width + 24 : c.width, c.width, dt);
}
at::Tensor as_2d(StridedDeviceTensor& t) { return t.download().reshape({t.rows, t.dim}); }

void run_case(const RowsCase& c, DType dtype) {
  const at::ScalarType dt = torch_dtype(dtype);
  const double eps = 1e-5;
  INFO("rows=" << c.rows << " width=" << c.width << " strided=" << c.strided << " dtype=" << at::toString(dt));
  const at::Tensor x = random_rounded({c.rows, c.width}, dt, 100), w = random_rounded({c.width}, dt, 101),
                   dy = random_rounded({c.rows, c.width}, dt, 102);
  const auto f = synthpert::reference::rmsnorm_forward_ref(vector_of(x), vector_of(w), c.rows, c.width, eps);
  const auto g =
      synthpert::reference::rmsnorm_backward_ref(vector_of(x), vector_of(w), vector_of(dy), c.rows, c.width, eps);
  const at::Tensor ref_y = tensor_of(f.y_RC, {c.rows, c.width}), ref_dx = tensor_of(g.dx_RC, {c.rows, c.width});
  const at::Tensor ref_dw = tensor_of(g.dw_C, {c.width}), ref_rstd = tensor_of(f.rstd_R, {c.rows});

  StridedDeviceTensor x_ = rows_tensor(c, dt), y_ = rows_tensor(c, dt), dy_ = rows_tensor(c, dt), dx_ = rows_tensor(c, dt);
  StridedDeviceTensor w_(1, 1, c.width, c.width, c.width, dt);
  x_.upload(x.view({c.rows, 1, c.width}));
  dy_.upload(dy.view({c.rows, 1, c.width}));
  w_.upload(w.view({1, 1, c.width}));
  y_.upload_poison();
  dx_.upload_poison();
  DeviceBuffer rstd(size_t(c.rows) * sizeof(float)), dw(size_t(c.width) * sizeof(float));
  DeviceBuffer ws(synthpert::kernels::rmsnorm_backward_workspace_bytes(c.rows, c.width));

  synthpert::kernels::RmsNormForwardArgs fa;
  fa.dtype = dtype;
  fa.rows = c.rows;
  fa.width = c.width;
  fa.eps = float(eps);
  fa.x = x_.device.get();
  fa.x_row_stride = x_.token_stride;
  fa.weight = w_.device.get();
  fa.y = y_.device.get();
  fa.y_row_stride = y_.token_stride;
  fa.rstd = rstd.as<float>();
  synthpert::kernels::rmsnorm_forward(fa, nullptr);
  synthpert::kernels::RmsNormBackwardArgs ba;
  ba.dtype = dtype;
  ba.rows = c.rows;
  ba.width = c.width;
  ba.x = fa.x;
  ba.x_row_stride = fa.x_row_stride;
  ba.weight = fa.weight;
  ba.rstd = rstd.as<float>();
  ba.dy = dy_.device.get();
  ba.dy_row_stride = dy_.token_stride;
  ba.dx = dx_.device.get();
  ba.dx_row_stride = dx_.token_stride;
  ba.dweight = dw.as<float>();
  ba.workspace = ws.get();
  synthpert::kernels::rmsnorm_backward(ba, nullptr);
  // A frozen weight (LoRA training): no dweight, no workspace.
  StridedDeviceTensor dx_frozen = rows_tensor(c, dt);
  dx_frozen.upload_poison();
  synthpert::kernels::RmsNormBackwardArgs frozen = ba;
  frozen.dx = dx_frozen.device.get();
  frozen.dweight = nullptr;
  frozen.workspace = nullptr;
  synthpert::kernels::rmsnorm_backward(frozen, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "rmsnorm");

  std::vector<float> rstd_h(size_t(c.rows)), dw_h(size_t(c.width));
  rstd.download(rstd_h.data(), rstd_h.size() * sizeof(float));
  dw.download(dw_h.data(), dw_h.size() * sizeof(float));
  const RowwiseResult peer = rmsnorm_peer(x, w, dy, eps, dt);
  check_within_peer("y", max_abs_err(as_2d(y_), ref_y), max_abs_err(peer.out, ref_y), half_ulp(dt, max_abs(ref_y)));
  check_within_peer("dx", max_abs_err(as_2d(dx_), ref_dx), max_abs_err(peer.grad_a, ref_dx),
                    half_ulp(dt, max_abs(ref_dx)));
  check_within_peer("dx (frozen weight)", max_abs_err(as_2d(dx_frozen), ref_dx), max_abs_err(peer.grad_a, ref_dx),
                    half_ulp(dt, max_abs(ref_dx)));
  check_within_peer("dw", max_abs_err(tensor_of(std::vector<double>(dw_h.begin(), dw_h.end()), {c.width}), ref_dw),
                    max_abs_err(peer.grad_b, ref_dw), 0.0);
  // rstd is an fp32 statistic, not a dtype output: bounded by the worst-case
  // relative error of an fp32 sum of `width` squares (width * 2^-24).
  const at::Tensor rstd_got = tensor_of(std::vector<double>(rstd_h.begin(), rstd_h.end()), {c.rows});
  CHECK(((rstd_got - ref_rstd).abs() / ref_rstd).max().item<double>() <= double(c.width) * std::ldexp(1.0, -24));
}

}  // namespace

TEST_CASE("rmsnorm kernels match the reference (bf16)", "[gpu][rmsnorm]") {
  for (const RowsCase& c : rmsnorm_cases()) run_case(c, DType::kBF16);
}
TEST_CASE("rmsnorm kernels match the reference (f16)", "[gpu][rmsnorm]") {
  for (const RowsCase& c : rmsnorm_cases()) run_case(c, DType::kF16);
}

#endif  // SYNTHPERT_NO_KERNELS
