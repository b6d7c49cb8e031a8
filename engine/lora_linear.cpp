#include "engine/lora_linear.h"

#include <torch/csrc/autograd/custom_function.h>

#include "common/error.h"
#include "engine/kernel_launch.h"
#include "engine/nf4_linear.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/lora.h"
#endif

namespace synthpert::engine {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The frozen base weight: dense, or NF4 dequantised on its device.
struct BaseHolder : torch::CustomClassHolder {
  torch::Tensor dense;
  std::shared_ptr<const Nf4Weight> nf4;
  torch::Tensor weight() const { return dense.defined() ? dense : nf4_dequantize_device(*nf4); }
};

#if defined(SYNTHPERT_HAVE_KERNELS)
namespace kn = synthpert::kernels;

// The fields LoraForwardArgs and LoraBackwardArgs share.
template <typename Args>
void fill_layer(Args& a, const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& A,
                const torch::Tensor& B, double scale) {
  a.dtype = kernel_dtype(x);
  a.rows = x.size(0);
  a.in_features = x.size(1);
  a.out_features = W.size(0);
  a.rank = A.size(0);
  a.scale = static_cast<float>(scale);
  a.x = x.data_ptr();
  a.x_row_stride = x.stride(0);
  a.weight = W.data_ptr();
  a.weight_row_stride = W.stride(0);
  a.lora_a = A.data_ptr();
  a.lora_a_row_stride = A.stride(0);
  a.lora_b = B.data_ptr();
  a.lora_b_row_stride = B.stride(0);
  a.cublas = kernel_cublas(x);
}
#endif

struct LoraLinearFunction : torch::autograd::Function<LoraLinearFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& a_in,
                               const torch::Tensor& b_in, const c10::intrusive_ptr<BaseHolder>& base, double scale) {
    const auto w = base->weight();
    torch::Tensor x = x_in, A = a_in, B = b_in, y, xa;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (kernels_apply(x.device(), x.scalar_type())) {
      x = kernel_rows(x_in), A = kernel_rows(a_in), B = kernel_rows(b_in);
      const auto W = kernel_rows(w);
      use_kernel_device(x);
      const int64_t N = x.size(0), O = W.size(0), R = A.size(0);
      y = torch::empty({N, O}, x.options());
      xa = torch::empty({N, R}, x.options());
      kn::LoraForwardArgs a;
      fill_layer(a, x, W, A, B, scale);
      a.y = y.data_ptr();
      a.y_row_stride = O;
      a.xa = xa.data_ptr();
      kn::lora_forward(a, kernel_stream(x));
    } else
#endif
    {
      xa = torch::mm(x, A.t());
      y = torch::mm(x, w.t()) + torch::mm(xa, B.t()) * scale;
    }
    ctx->save_for_backward({x, A, B, xa});
    ctx->saved_data["base"] = c10::IValue::make_capsule(c10::intrusive_ptr<torch::CustomClassHolder>(base));
    ctx->saved_data["scale"] = scale;
    return y;
  }

  // dB = s dy^T xa, dxa = s dy B, dA = dxa^T x, dx = dy W + dxa A.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &A = saved[1], &B = saved[2], &xa = saved[3];
    const auto capsule = ctx->saved_data["base"].toCapsule();
    const auto* base = static_cast<const BaseHolder*>(capsule.get());
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto w = base->weight();
    torch::Tensor dx, dA, dB;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (kernels_apply(x.device(), x.scalar_type())) {
      const auto dy = kernel_rows(grads[0]), W = kernel_rows(w);
      use_kernel_device(x);
      const int64_t N = x.size(0), K = x.size(1), O = W.size(0), R = A.size(0);
      dx = torch::empty({N, K}, x.options());
      dA = torch::empty({R, K}, x.options().dtype(torch::kFloat32));
      dB = torch::empty({O, R}, x.options().dtype(torch::kFloat32));
      const auto ws = kernel_workspace(x, kn::lora_backward_workspace_bytes(N, R));
      kn::LoraBackwardArgs a;
      fill_layer(a, x, W, A, B, scale);
      a.xa = xa.data_ptr();
      a.dy = dy.data_ptr();
      a.dy_row_stride = dy.stride(0);
      a.dx = dx.data_ptr();
      a.dx_row_stride = K;
      a.grad_a = dA.data_ptr<float>();
      a.grad_b = dB.data_ptr<float>();
      a.workspace = ws.ptr;
      kn::lora_backward(a, kernel_stream(x));
      return {dx, dA.to(A.scalar_type()), dB.to(B.scalar_type()), torch::Tensor(), torch::Tensor()};
    }
#endif
    const auto& dy = grads[0];
    dB = torch::mm(dy.t(), xa) * scale;
    const auto dxa = torch::mm(dy, B) * scale;
    dA = torch::mm(dxa.t(), x);
    dx = torch::mm(dy, w.to(dy.scalar_type())) + torch::mm(dxa, A);
    return {dx, dA, dB, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor lora_linear(const torch::Tensor& x, const Linear& base, const LoraWeights& lora) {
  SP_CHECK(x.dim() == 2 && x.size(1) == base.in_features(), "lora_linear: x must be (N, ", base.in_features(),
           "), got ", x.sizes());
  SP_CHECK(lora.A.dim() == 2 && lora.B.dim() == 2 && lora.A.size(1) == base.in_features() &&
               lora.B.size(0) == base.out_features() && lora.A.size(0) == lora.B.size(1),
           "lora_linear: adapter shapes A ", lora.A.sizes(), ", B ", lora.B.sizes(), " do not fit the layer");
  auto holder = c10::make_intrusive<BaseHolder>();
  holder->dense = base.weight;
  holder->nf4 = base.nf4;
  return LoraLinearFunction::apply(x, lora.A, lora.B, holder, lora.scale);
}

}  // namespace synthpert::engine
