// RoPE kernel (forward rotation and its inverse, the backward) against the
// fp64 reference with the tolerance rule of test_attention_common.h ([gpu]).
// Strided cases pad heads and tokens with NaN; one pass per case also runs
// in place (y == x).
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "kernels/rope.h"
#include "tests/kernels/ref_test_util.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/kernels/test_rowwise_peer.h"
#include "tests/reference/kernels/rope_ref.h"

namespace {

using namespace synthpert::test;
using synthpert::kernels::DType;

void run_case(const RopeCase& c, DType dtype, bool in_place) {
  const at::ScalarType dt = torch_dtype(dtype);
  const int64_t N = c.tokens;
  const int H = c.heads, D = c.head_dim;
  INFO("N=" << N << " H=" << H << " D=" << D << " strided=" << c.strided << " llama3=" << c.llama3
            << " in_place=" << in_place << " dtype=" << at::toString(dt));
  const auto inv_freq = c.llama3 ? synthpert::kernels::rope_inv_freq_llama3(D, 500000.0, {})
                                 : synthpert::kernels::rope_inv_freq(D, 10000.0);
  const auto pos = rope_positions(N);
  const at::Tensor x = random_rounded({N, H, D}, dt, 300), dy = random_rounded({N, H, D}, dt, 301);
  const at::Tensor ref_y = tensor_of(synthpert::reference::rope_ref(vector_of(x), pos, inv_freq, H, D, false), {N, H, D});
  const at::Tensor ref_dx = tensor_of(synthpert::reference::rope_ref(vector_of(dy), pos, inv_freq, H, D, true), {N, H, D});

  auto make = [&] {
    const int64_t hs = c.strided ? D + 8 : D;
    return StridedDeviceTensor(N, H, D, c.strided ? H * hs + 24 : H * hs, hs, dt);
  };
  StridedDeviceTensor x_ = make(), y_ = make(), dy_ = make(), dx_ = make();
  x_.upload(x);
  dy_.upload(dy);
  y_.upload_poison();
  dx_.upload_poison();
  DeviceBuffer pos_d(pos.size() * sizeof(int64_t)), freq_d(inv_freq.size() * sizeof(float));
  pos_d.upload(pos.data(), pos_d.bytes());
  freq_d.upload(inv_freq.data(), freq_d.bytes());

  auto run = [&](StridedDeviceTensor& in, StridedDeviceTensor& out, bool inverse) {
    synthpert::kernels::RopeArgs a;
    a.dtype = dtype;
    a.tokens = N;
    a.heads = H;
    a.head_dim = D;
    a.x = in.device.get();
    a.x_token_stride = in.token_stride;
    a.x_head_stride = in.head_stride;
    a.y = out.device.get();
    a.y_token_stride = out.token_stride;
    a.y_head_stride = out.head_stride;
    a.positions = pos_d.as<int64_t>();
    a.inv_freq = freq_d.as<float>();
    a.inverse = inverse;
    synthpert::kernels::rope_apply(a, nullptr);
  };
  run(x_, in_place ? x_ : y_, false);
  run(dy_, in_place ? dy_ : dx_, true);
  cuda_ok(cudaDeviceSynchronize(), "rope");
  const at::Tensor y = in_place ? x_.download() : y_.download();
  const at::Tensor dx = in_place ? dy_.download() : dx_.download();
  const RowwiseResult peer = rope_peer(x, dy, pos, inv_freq, dt);
  check_within_peer("y", max_abs_err(y, ref_y), max_abs_err(peer.out, ref_y), half_ulp(dt, max_abs(ref_y)));
  check_within_peer("dx", max_abs_err(dx, ref_dx), max_abs_err(peer.grad_a, ref_dx), half_ulp(dt, max_abs(ref_dx)));
}

}  // namespace

TEST_CASE("rope kernel matches the reference (bf16)", "[gpu][rope]") {
  for (const RopeCase& c : rope_cases())
    for (bool in_place : {false, true}) run_case(c, DType::kBF16, in_place);
}
TEST_CASE("rope kernel matches the reference (f16)", "[gpu][rope]") {
  for (const RopeCase& c : rope_cases()) run_case(c, DType::kF16, false);
}

#endif  // SYNTHPERT_NO_KERNELS
