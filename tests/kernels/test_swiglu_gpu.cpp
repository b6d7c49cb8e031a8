// SwiGLU kernels against the fp64 reference with the tolerance rule of
// test_attention_common.h ([gpu]). Strided cases use the fused layout: gate
// and up are the two halves of one [R, 2I] buffer, and so are dgate and dup.
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "kernels/swiglu.h"
#include "tests/kernels/ref_test_util.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/kernels/test_rowwise_peer.h"
#include "tests/reference/kernels/swiglu_ref.h"

namespace {

using namespace synthpert::test;
using synthpert::kernels::DType;

void run_case(const RowsCase& c, DType dtype) {
  const at::ScalarType dt = torch_dtype(dtype);
  const int64_t R = c.rows, I = c.width;
  INFO("rows=" << R << " width=" << I << " fused=" << c.strided << " dtype=" << at::toString(dt));
  const at::Tensor gate = random_rounded({R, I}, dt, 200, 3.0), up = random_rounded({R, I}, dt, 201),
                   dout = random_rounded({R, I}, dt, 202);
  const at::Tensor ref_out =
      tensor_of(synthpert::reference::swiglu_forward_ref(vector_of(gate), vector_of(up)), {R, I});
  const auto g = synthpert::reference::swiglu_backward_ref(vector_of(gate), vector_of(up), vector_of(dout));
  const at::Tensor ref_dgate = tensor_of(g.dgate, {R, I}), ref_dup = tensor_of(g.dup, {R, I});

  // Fused: one [R, 2 heads, I] tensor whose "heads" are gate and up.
  const int64_t heads = c.strided ? 2 : 1;
  auto make = [&] { return StridedDeviceTensor(R, heads, I, heads * I, I, dt); };
  StridedDeviceTensor in_gate = make(), in_up = make(), out_ = make(), dout_ = make(), grad_gate = make(),
                      grad_up = make();
  if (c.strided) {
    in_gate.upload(at::stack({gate, up}, 1));
    grad_gate.upload_poison();
  } else {
    in_gate.upload(gate.view({R, 1, I}));
    in_up.upload(up.view({R, 1, I}));
    grad_gate.upload_poison();
    grad_up.upload_poison();
  }
  out_.upload_poison();
  dout_.upload(dout.view({R, 1, I}).expand({R, heads, I}));
  auto base = [](StridedDeviceTensor& t) { return static_cast<char*>(t.device.get()); };
  const size_t half_offset = size_t(I) * 2;  // bytes to the "up" half of a fused row
  const void* gate_ptr = base(in_gate);
  const void* up_ptr = c.strided ? base(in_gate) + half_offset : base(in_up);
  void* dgate_ptr = base(grad_gate);
  void* dup_ptr = c.strided ? base(grad_gate) + half_offset : base(grad_up);
  const int64_t stride = heads * I;

  synthpert::kernels::SwigluForwardArgs fa;
  fa.dtype = dtype;
  fa.rows = R;
  fa.width = I;
  fa.gate = gate_ptr;
  fa.gate_row_stride = stride;
  fa.up = up_ptr;
  fa.up_row_stride = stride;
  fa.out = out_.device.get();
  fa.out_row_stride = stride;
  synthpert::kernels::swiglu_forward(fa, nullptr);
  synthpert::kernels::SwigluBackwardArgs ba;
  ba.dtype = dtype;
  ba.rows = R;
  ba.width = I;
  ba.gate = gate_ptr;
  ba.gate_row_stride = stride;
  ba.up = up_ptr;
  ba.up_row_stride = stride;
  ba.dout = dout_.device.get();
  ba.dout_row_stride = stride;
  ba.dgate = dgate_ptr;
  ba.dgate_row_stride = stride;
  ba.dup = dup_ptr;
  ba.dup_row_stride = stride;
  synthpert::kernels::swiglu_backward(ba, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "swiglu");

  const at::Tensor out_all = out_.download(), grads = grad_gate.download();
  const at::Tensor out = out_all.select(1, 0), dgate = grads.select(1, 0);
  const at::Tensor dup = c.strided ? grads.select(1, 1) : grad_up.download().select(1, 0);
  // The forward writes only the first "head" of its output rows; the rest stays NaN.
  if (c.strided) CHECK(at::isnan(out_all.select(1, 1)).all().item<bool>());
  const RowwiseResult peer = swiglu_peer(gate, up, dout, dt);
  check_within_peer("out", max_abs_err(out, ref_out), max_abs_err(peer.out, ref_out), half_ulp(dt, max_abs(ref_out)));
  check_within_peer("dgate", max_abs_err(dgate, ref_dgate), max_abs_err(peer.grad_a, ref_dgate),
                    half_ulp(dt, max_abs(ref_dgate)));
  check_within_peer("dup", max_abs_err(dup, ref_dup), max_abs_err(peer.grad_b, ref_dup), half_ulp(dt, max_abs(ref_dup)));
}

}  // namespace

TEST_CASE("swiglu kernels match the reference (bf16)", "[gpu][swiglu]") {
  for (const RowsCase& c : swiglu_cases()) run_case(c, DType::kBF16);
}
TEST_CASE("swiglu kernels match the reference (f16)", "[gpu][swiglu]") {
  for (const RowsCase& c : swiglu_cases()) run_case(c, DType::kF16);
}

#endif  // SYNTHPERT_NO_KERNELS
