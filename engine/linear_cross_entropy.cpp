#include "engine/linear_cross_entropy.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "common/error.h"
#include "engine/kernel_launch.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/fused_linear_ce.h"
#endif

namespace synthpert::engine {

namespace {

// Tokens per chunk: the float32 logits and their gradient of one chunk stay
// near 256 MiB whatever the vocabulary (333 tokens at V = 128,256).
int64_t chunk_tokens(int64_t vocab) {
  return std::clamp<int64_t>((256ll << 20) / (vocab * 6), 16, 4096);
}

struct CeResult {
  torch::Tensor loss_sum;  // float32 scalar
  torch::Tensor dhidden;   // (N, C) hidden's dtype, or undefined
  torch::Tensor dweight;   // (V, C) float32, or undefined
};

// ---- torch math, any device ------------------------------------------------
CeResult forward_math(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                      int64_t ignore_index, bool want_dhidden, bool want_dweight) {
  const int64_t N = hidden.size(0), V = weight.size(0), M = chunk_tokens(V);
  const auto wf = weight.to(torch::kFloat32);
  auto loss = torch::zeros({}, hidden.options().dtype(torch::kFloat32));
  CeResult r;
  if (want_dhidden) r.dhidden = torch::empty(hidden.sizes(), hidden.options());
  if (want_dweight) r.dweight = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32));
  for (int64_t a = 0; a < N; a += M) {
    const int64_t m = std::min(M, N - a);
    const auto h = hidden.narrow(0, a, m).to(torch::kFloat32);
    const auto t = targets.narrow(0, a, m);
    const auto counted = t.ne(ignore_index);
    const auto safe_t = torch::where(counted, t, torch::zeros_like(t));
    const auto logits = torch::matmul(h, wf.t());                          // (m, V)
    const auto lse = torch::logsumexp(logits, -1);                        // (m)
    const auto picked = logits.gather(1, safe_t.unsqueeze(1)).squeeze(1);
    loss = loss + ((lse - picked) * counted).sum();
    if (!want_dhidden && !want_dweight) continue;
    auto dlogits = torch::exp(logits - lse.unsqueeze(1));
    dlogits.scatter_add_(1, safe_t.unsqueeze(1), -torch::ones({m, 1}, dlogits.options()));
    dlogits = dlogits * counted.unsqueeze(1);
    if (want_dhidden) r.dhidden.narrow(0, a, m).copy_(torch::matmul(dlogits, wf));
    if (want_dweight) r.dweight.add_(torch::matmul(dlogits.t(), h));
  }
  r.loss_sum = loss;
  return r;
}

// ---- the CUDA kernel ---------------------------------------------------------
#if defined(SYNTHPERT_HAVE_KERNELS)
namespace kn = synthpert::kernels;

CeResult forward_kernel(const torch::Tensor& hidden_in, const torch::Tensor& weight_in, const torch::Tensor& targets_in,
                        int64_t ignore_index, bool want_dhidden, bool want_dweight) {
  use_kernel_device(hidden_in);
  // Rows may be strided, but each row must be contiguous.
  const auto hidden = kernel_rows(hidden_in);
  const auto weight = kernel_rows(weight_in);
  const auto targets = targets_in.to(hidden_in.device(), torch::kInt64).contiguous();
  const int64_t N = hidden.size(0), C = hidden.size(1), V = weight.size(0), M = chunk_tokens(V);
  auto loss = torch::empty({N}, hidden.options().dtype(torch::kFloat32));
  CeResult r;
  if (want_dhidden) r.dhidden = torch::empty({N, C}, hidden.options());
  if (want_dweight) r.dweight = torch::zeros({V, C}, hidden.options().dtype(torch::kFloat32));
  const auto ws = kernel_workspace(hidden, kn::fused_linear_ce_workspace_bytes(M, V));
  kn::FusedLinearCrossEntropyArgs a;
  a.dtype = kernel_dtype(hidden);
  a.tokens = N;
  a.hidden_size = C;
  a.vocab = V;
  a.hidden = hidden.data_ptr();
  a.hidden_row_stride = hidden.stride(0);
  a.weight = weight.data_ptr();
  a.weight_row_stride = weight.stride(0);
  a.targets = targets.data_ptr<int64_t>();
  a.ignore_index = ignore_index;
  a.loss = loss.data_ptr<float>();
  a.grad_scale = 1.f;
  if (want_dhidden) {
    a.dhidden = r.dhidden.data_ptr();
    a.dhidden_row_stride = C;
  }
  if (want_dweight) a.dweight = r.dweight.data_ptr<float>();
  a.chunk_tokens = M;
  a.workspace = ws.ptr;
  a.cublas = kernel_cublas(hidden);
  kn::fused_linear_cross_entropy(a, kernel_stream(hidden));
  r.loss_sum = loss.sum();
  return r;
}

bool use_kernel(const torch::Tensor& hidden) { return kernels_apply(hidden.device(), hidden.scalar_type()); }
#endif

struct LinearCrossEntropyFunction : torch::autograd::Function<LinearCrossEntropyFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets, int64_t ignore_index,
                               bool grad_mode) {
    // Autograd is off inside forward; the input flags still say what is
    // trained, and the caller's grad mode whether anything is (validation
    // under NoGradGuard needs no (V x C) float32 weight gradient).
    const bool want_dhidden = grad_mode && hidden.requires_grad();
    const bool want_dweight = grad_mode && weight.requires_grad();
    CeResult r;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (use_kernel(hidden)) {
      r = forward_kernel(hidden, weight, targets, ignore_index, want_dhidden, want_dweight);
    } else
#endif
    {
      r = forward_math(hidden, weight, targets, ignore_index, want_dhidden, want_dweight);
    }
    ctx->save_for_backward({r.dhidden, r.dweight});
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    return r.loss_sum;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& g = grads[0];  // float32 scalar
    torch::Tensor dhidden, dweight;
    if (saved[0].defined()) dhidden = (saved[0].to(torch::kFloat32) * g).to(saved[0].scalar_type());
    if (saved[1].defined()) {
      const auto wdt = static_cast<torch::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
      dweight = (saved[1] * g).to(wdt);
    }
    return {dhidden, dweight, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, int64_t ignore_index) {
  SP_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
           "linear_cross_entropy_sum: expected hidden (N, C) and weight (V, C), got ", hidden.sizes(), " and ",
           weight.sizes());
  SP_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0),
           "linear_cross_entropy_sum: targets must be (N) for hidden (N, C)");
  SP_CHECK(hidden.scalar_type() == weight.scalar_type() && hidden.device() == weight.device(),
           "linear_cross_entropy_sum: hidden and weight must share dtype and device");
  if (hidden.size(0) == 0) return torch::zeros({}, hidden.options().dtype(torch::kFloat32));
  return LinearCrossEntropyFunction::apply(hidden, weight, targets, ignore_index, torch::GradMode::is_enabled());
}

}  // namespace synthpert::engine
