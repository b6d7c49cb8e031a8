// Fused linear + cross-entropy against the fp64 reference with the tolerance
// rule of test_attention_common.h ([gpu]). The peer is eager PyTorch in the
// dtype: logits from a bf16/f16 GEMM (fp32 accumulation, rounded output),
// cross_entropy in fp32 on those logits with its per-token loss rounded, the
// logits' gradient rounded, then the two gradient GEMMs rounded. Chunk sizes
// that do not divide the token count, padded rows, ignored tokens and
// accumulation into an existing dweight are all exercised.
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>
#include <cublas_v2.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "kernels/fused_linear_ce.h"
#include "tests/kernels/ref_test_util.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/reference/kernels/fused_linear_ce_ref.h"

namespace {

using namespace synthpert::test;
using synthpert::kernels::DType;

struct CeCase {
  int64_t tokens, hidden, vocab, chunk;
  bool strided;
};

struct CePeer {
  at::Tensor loss, dhidden, dweight;
};

CePeer ce_peer(const at::Tensor& h, const at::Tensor& w, const std::vector<int64_t>& targets, double scale,
               at::ScalarType dt) {
  const at::Tensor logits = rnd(h.to(at::kFloat).mm(w.to(at::kFloat).t()), dt);  // (N, V)
  const at::Tensor t = at::tensor(targets, at::kLong);
  const at::Tensor valid = t.ne(-100);
  const at::Tensor safe_t = at::where(valid, t, at::zeros_like(t));
  const at::Tensor logp = at::log_softmax(logits, -1);
  const at::Tensor loss = rnd(-logp.gather(1, safe_t.unsqueeze(1)).squeeze(1) * valid, dt);
  const at::Tensor onehot = at::zeros_like(logits).scatter_(1, safe_t.unsqueeze(1), 1.0);
  const at::Tensor g = rnd((at::softmax(logits, -1) - onehot) * valid.unsqueeze(1) * scale, dt);
  return {loss.to(at::kDouble), rnd(g.mm(w.to(at::kFloat)), dt).to(at::kDouble),
          rnd(g.t().mm(h.to(at::kFloat)), dt).to(at::kDouble)};
}

// The forward's arguments over device buffers (the gradients left unset).
synthpert::kernels::FusedLinearCrossEntropyArgs forward_args(DType dtype, const StridedDeviceTensor& h,
                                                             const StridedDeviceTensor& w, int64_t vocab,
                                                             const DeviceBuffer& targets, const DeviceBuffer& loss,
                                                             const DeviceBuffer& lse, int64_t chunk,
                                                             const DeviceBuffer& workspace, cublasHandle_t handle) {
  synthpert::kernels::FusedLinearCrossEntropyArgs a;
  a.dtype = dtype;
  a.tokens = h.rows;
  a.hidden_size = h.dim;
  a.vocab = vocab;
  a.hidden = h.device.get();
  a.hidden_row_stride = h.token_stride;
  a.weight = w.device.get();
  a.weight_row_stride = w.token_stride;
  a.targets = targets.as<int64_t>();
  a.loss = loss.as<float>();
  a.lse = lse.as<float>();
  a.chunk_tokens = chunk;
  a.workspace = workspace.get();
  a.cublas = handle;
  return a;
}

void run_case(const CeCase& c, DType dtype, cublasHandle_t handle) {
  const at::ScalarType dt = torch_dtype(dtype);
  const int64_t N = c.tokens, C = c.hidden, V = c.vocab;
  INFO("N=" << N << " C=" << C << " V=" << V << " chunk=" << c.chunk << " strided=" << c.strided
            << " dtype=" << at::toString(dt));
  const at::Tensor h = random_rounded({N, C}, dt, 400), w = random_rounded({V, C}, dt, 401, 0.2);
  std::vector<int64_t> targets(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) targets[size_t(i)] = (i % 4 == 3) ? -100 : (i * 7919 + 11) % V;
  const double scale = 1.0 / double(std::max<int64_t>(1, N));
  const auto ref = synthpert::reference::linear_cross_entropy_ref(vector_of(h), vector_of(w), targets, C, -100, scale);
  const at::Tensor ref_loss = tensor_of(ref.loss_N, {N}), ref_lse = tensor_of(ref.lse_N, {N});
  const at::Tensor ref_dh = tensor_of(ref.dhidden_NC, {N, C}), ref_dw = tensor_of(ref.dweight_VC, {V, C});

  const int64_t pad = c.strided ? 8 : 0;
  StridedDeviceTensor h_(N, 1, C, C + pad, C, dt), w_(V, 1, C, C + pad, C, dt), dh_(N, 1, C, C + pad, C, dt);
  h_.upload(h.view({N, 1, C}));
  w_.upload(w.view({V, 1, C}));
  dh_.upload_poison();
  DeviceBuffer t_(targets.size() * sizeof(int64_t)), loss_(size_t(N) * 4), lse_(size_t(N) * 4),
      dw_(size_t(V * C) * 4), ws(synthpert::kernels::fused_linear_ce_workspace_bytes(c.chunk, V));
  t_.upload(targets.data(), t_.bytes());
  // dweight is accumulated: start from known values and subtract them after.
  const at::Tensor dw_start = at::randn({V, C}, at::kFloat);
  dw_.upload(dw_start.data_ptr<float>(), dw_.bytes());

  auto a = forward_args(dtype, h_, w_, V, t_, loss_, lse_, c.chunk, ws, handle);
  a.grad_scale = float(scale);
  a.dhidden = dh_.device.get();
  a.dhidden_row_stride = dh_.token_stride;
  a.dweight = dw_.as<float>();
  synthpert::kernels::fused_linear_cross_entropy(a, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "fused_linear_cross_entropy");

  auto download_f32 = [](const DeviceBuffer& b, at::IntArrayRef shape) {
    at::Tensor t = at::empty(shape, at::kFloat);
    b.download(t.data_ptr<float>(), size_t(t.numel()) * 4);
    return t.to(at::kDouble);
  };
  const at::Tensor loss = download_f32(loss_, {N}), lse = download_f32(lse_, {N});
  const at::Tensor dw = download_f32(dw_, {V, C}) - dw_start.to(at::kDouble);
  const CePeer peer = ce_peer(h, w, targets, scale, dt);
  for (int64_t i = 3; i < N; i += 4) CHECK(loss[i].item<double>() == 0.0);
  check_within_peer("loss", max_abs_err(loss, ref_loss), max_abs_err(peer.loss, ref_loss), 0.0);
  // lse has no peer output; it is within fp32 rounding of the reference
  // (a loose absolute bound: 1e-4 relative to its magnitude).
  CHECK(max_abs_err(lse, ref_lse) <= 1e-4 * std::max(1.0, max_abs(ref_lse)));
  check_within_peer("dhidden", max_abs_err(dh_.download().view({N, C}), ref_dh), max_abs_err(peer.dhidden, ref_dh),
                    half_ulp(dt, max_abs(ref_dh)));
  check_within_peer("dweight", max_abs_err(dw, ref_dw), max_abs_err(peer.dweight, ref_dw), 0.0);
}

void run_cases(DType dtype, bool large) {
  static const CeCase small[] = {
      {1, 64, 1000, 1024, false}, {5, 72, 517, 2, true}, {123, 64, 3000, 50, false}, {256, 128, 4099, 100, true}};
  static const CeCase big[] = {{1023, 128, 5003, 256, false}, {64, 64, 128256, 16, true}};
  cublasHandle_t handle = nullptr;
  REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
  for (const CeCase& c : large ? std::vector<CeCase>(std::begin(big), std::end(big))
                               : std::vector<CeCase>(std::begin(small), std::end(small)))
    run_case(c, dtype, handle);
  cublasDestroy(handle);
}

// One vocabulary row of the weight NaN: every token's logit there is NaN, so
// (as torch's log_softmax) every scored token's logsumexp and loss are NaN,
// wherever in a thread's share of the row the NaN sits.
void run_nan_logit(int64_t nan_row, int64_t V, cublasHandle_t handle) {
  const DType dtype = DType::kBF16;
  const at::ScalarType dt = torch_dtype(dtype);
  const int64_t N = 7, C = 64;
  INFO("NaN weight row " << nan_row << " of " << V);
  at::Tensor h = random_rounded({N, C}, dt, 410), w = random_rounded({V, C}, dt, 411, 0.2);
  w[nan_row][C / 2] = std::numeric_limits<float>::quiet_NaN();
  std::vector<int64_t> targets(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) targets[size_t(i)] = i == 2 ? -100 : (i * 37 + 1) % V;
  // The oracle: torch on the same inputs.
  const at::Tensor logits = h.to(at::kFloat).mm(w.to(at::kFloat).t());
  const at::Tensor torch_lse = at::logsumexp(logits, -1);
  REQUIRE(torch_lse.isnan().all().item<bool>());

  StridedDeviceTensor h_(N, 1, C, C, C, dt), w_(V, 1, C, C, C, dt);
  h_.upload(h.view({N, 1, C}));
  w_.upload(w.view({V, 1, C}));
  DeviceBuffer t_(targets.size() * sizeof(int64_t)), loss_(size_t(N) * 4), lse_(size_t(N) * 4),
      ws(synthpert::kernels::fused_linear_ce_workspace_bytes(4, V));
  t_.upload(targets.data(), t_.bytes());
  synthpert::kernels::fused_linear_cross_entropy(forward_args(dtype, h_, w_, V, t_, loss_, lse_, 4, ws, handle),
                                                  nullptr);
  cuda_ok(cudaDeviceSynchronize(), "fused_linear_cross_entropy");
  std::vector<float> loss(static_cast<size_t>(N)), lse(static_cast<size_t>(N));
  loss_.download(loss.data(), loss_.bytes());
  lse_.download(lse.data(), lse_.bytes());
  for (int64_t i = 0; i < N; ++i) {
    INFO("token " << i);
    CHECK(std::isnan(lse[size_t(i)]));
    if (targets[size_t(i)] == -100) CHECK(loss[size_t(i)] == 0.f);
    else CHECK(std::isnan(loss[size_t(i)]));
  }
}

}  // namespace

TEST_CASE("fused linear cross-entropy: a NaN logit makes every scored token's loss NaN", "[gpu][fused_ce]") {
  cublasHandle_t handle = nullptr;
  REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
  // The first column (every thread's first logit at once), one inside the
  // row, the last; with an odd vocabulary (one logit per load) and one of
  // 4k (four per load: the last of a thread's first four too).
  for (const int64_t row : {0, 1, 130, 516}) run_nan_logit(row, 517, handle);
  for (const int64_t row : {0, 3, 130, 515}) run_nan_logit(row, 516, handle);
  cublasDestroy(handle);
}

TEST_CASE("fused linear cross-entropy matches the reference (bf16, small)", "[gpu][fused_ce]") {
  run_cases(DType::kBF16, false);
}
TEST_CASE("fused linear cross-entropy matches the reference (f16, small)", "[gpu][fused_ce]") {
  run_cases(DType::kF16, false);
}
TEST_CASE("fused linear cross-entropy matches the reference (bf16, large)", "[gpu][fused_ce][large]") {
  run_cases(DType::kBF16, true);
}

#endif  // SYNTHPERT_NO_KERNELS
