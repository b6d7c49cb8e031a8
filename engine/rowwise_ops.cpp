#include "engine/rowwise_ops.h"

#include <torch/csrc/autograd/custom_function.h>

#include "common/error.h"
#include "engine/kernel_launch.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#endif

namespace synthpert::engine {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// (.., C) -> (R, C) with contiguous rows (a copy only when needed).
torch::Tensor as_rows(const torch::Tensor& t) { return t.reshape({-1, t.size(-1)}).contiguous(); }

#if defined(SYNTHPERT_HAVE_KERNELS)
namespace kn = synthpert::kernels;

bool use_kernel(const torch::Tensor& t) { return kernels_apply(t.device(), t.scalar_type()); }

// The fields SwigluForwardArgs and SwigluBackwardArgs share ((R, I) rows).
template <typename Args>
void fill_gate_up(Args& a, const torch::Tensor& gate, const torch::Tensor& up) {
  a.dtype = kernel_dtype(gate);
  a.rows = gate.size(0);
  a.width = gate.size(1);
  a.gate = gate.data_ptr();
  a.gate_row_stride = gate.size(1);
  a.up = up.data_ptr();
  a.up_row_stride = up.size(1);
}
#endif

// ---- RMSNorm ---------------------------------------------------------------
struct RmsNormFunction : torch::autograd::Function<RmsNormFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& weight,
                               double eps) {
    const auto x = as_rows(x_in);  // (R, C)
    [[maybe_unused]] const int64_t R = x.size(0), C = x.size(1);
    torch::Tensor y, rstd;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (use_kernel(x)) {
      use_kernel_device(x);
      y = torch::empty({R, C}, x.options());
      rstd = torch::empty({R}, x.options().dtype(torch::kFloat32));
      const auto w = weight.contiguous();  // held: the launch reads it
      kn::RmsNormForwardArgs a;
      a.dtype = kernel_dtype(x);
      a.rows = R;
      a.width = C;
      a.eps = static_cast<float>(eps);
      a.x = x.data_ptr();
      a.x_row_stride = C;
      a.weight = w.data_ptr();
      a.y = y.data_ptr();
      a.y_row_stride = C;
      a.rstd = rstd.data_ptr<float>();
      kn::rmsnorm_forward(a, kernel_stream(x));
    } else
#endif
    {
      const auto xf = x.to(torch::kFloat32);
      rstd = torch::rsqrt(xf.pow(2).mean(-1) + eps);
      y = weight * (xf * rstd.unsqueeze(1)).to(x.scalar_type());
    }
    ctx->save_for_backward({x, weight, rstd});
    ctx->saved_data["shape"] = x_in.sizes().vec();
    ctx->saved_data["want_dw"] = weight.requires_grad();
    return y.view(x_in.sizes());
  }

  // With n = x * rstd and g = dy * w: dx = rstd * (g - n * mean(g * n)),
  // dweight = sum over rows of dy * round(n).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &rstd = saved[2];
    const auto dy = as_rows(grads[0]);
    [[maybe_unused]] const int64_t R = x.size(0), C = x.size(1);
    const bool want_dw = ctx->saved_data["want_dw"].toBool();
    torch::Tensor dx, dw;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (use_kernel(x) && (!want_dw || C <= kn::kRmsNormMaxDweightWidth)) {
      use_kernel_device(x);
      dx = torch::empty({R, C}, x.options());
      kn::RmsNormBackwardArgs a;
      a.dtype = kernel_dtype(x);
      a.rows = R;
      a.width = C;
      a.x = x.data_ptr();
      a.x_row_stride = C;
      const auto w = weight.contiguous();
      a.weight = w.data_ptr();
      a.rstd = rstd.data_ptr<float>();
      a.dy = dy.data_ptr();
      a.dy_row_stride = C;
      a.dx = dx.data_ptr();
      a.dx_row_stride = C;
      KernelWorkspace ws;
      if (want_dw) {
        dw = torch::empty({C}, x.options().dtype(torch::kFloat32));
        ws = kernel_workspace(x, kn::rmsnorm_backward_workspace_bytes(R, C));
        a.dweight = dw.data_ptr<float>();
        a.workspace = ws.ptr;
      }
      kn::rmsnorm_backward(a, kernel_stream(x));
      if (want_dw) dw = dw.to(weight.scalar_type());
    } else
#endif
    {
      const auto xf = x.to(torch::kFloat32), dyf = dy.to(torch::kFloat32);
      const auto n = xf * rstd.unsqueeze(1);
      const auto g = dyf * weight.to(torch::kFloat32);
      dx = (rstd.unsqueeze(1) * (g - n * (g * n).mean(-1, /*keepdim=*/true))).to(x.scalar_type());
      if (want_dw) dw = (dyf * n.to(x.scalar_type()).to(torch::kFloat32)).sum(0).to(weight.scalar_type());
    }
    return {dx.view(ctx->saved_data["shape"].toIntVector()), dw, torch::Tensor()};
  }
};

// ---- SwiGLU ----------------------------------------------------------------
struct SwigluFunction : torch::autograd::Function<SwigluFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate_in, const torch::Tensor& up_in) {
    const auto gate = as_rows(gate_in), up = as_rows(up_in);
    torch::Tensor out;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (use_kernel(gate)) {
      use_kernel_device(gate);
      const int64_t R = gate.size(0), I = gate.size(1);
      out = torch::empty({R, I}, gate.options());
      kn::SwigluForwardArgs a;
      fill_gate_up(a, gate, up);
      a.out = out.data_ptr();
      a.out_row_stride = I;
      kn::swiglu_forward(a, kernel_stream(gate));
    } else
#endif
    {
      const auto g = gate.to(torch::kFloat32);
      out = (g * torch::sigmoid(g) * up.to(torch::kFloat32)).to(gate.scalar_type());
    }
    ctx->save_for_backward({gate, up});
    ctx->saved_data["shape"] = gate_in.sizes().vec();
    return out.view(gate_in.sizes());
  }

  // dgate = dout * up * s * (1 + g (1 - s)), dup = dout * g * s, s = sigmoid(g).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &gate = saved[0], &up = saved[1];
    const auto dout = as_rows(grads[0]);
    const auto shape = ctx->saved_data["shape"].toIntVector();
    torch::Tensor dgate, dup;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (use_kernel(gate)) {
      use_kernel_device(gate);
      const int64_t R = gate.size(0), I = gate.size(1);
      dgate = torch::empty({R, I}, gate.options());
      dup = torch::empty({R, I}, gate.options());
      kn::SwigluBackwardArgs a;
      fill_gate_up(a, gate, up);
      a.dout = dout.data_ptr();
      a.dout_row_stride = I;
      a.dgate = dgate.data_ptr();
      a.dgate_row_stride = I;
      a.dup = dup.data_ptr();
      a.dup_row_stride = I;
      kn::swiglu_backward(a, kernel_stream(gate));
    } else
#endif
    {
      const auto g = gate.to(torch::kFloat32), u = up.to(torch::kFloat32), d = dout.to(torch::kFloat32);
      const auto s = torch::sigmoid(g);
      dgate = (d * u * s * (1 + g * (1 - s))).to(gate.scalar_type());
      dup = (d * g * s).to(up.scalar_type());
    }
    return {dgate.view(shape), dup.view(shape)};
  }
};

// ---- RoPE ------------------------------------------------------------------
// y = rotate(x, angle) with angle = position * inv_freq per channel pair
// (i, i + D/2); the backward is the rotation by -angle.
torch::Tensor rope_rotate(const torch::Tensor& x_NHD, const torch::Tensor& pos_N, const torch::Tensor& inv_freq,
                          bool inverse) {
#if defined(SYNTHPERT_HAVE_KERNELS)
  if (use_kernel(x_NHD)) {
    // The kernel takes a token and a head stride, with a token's heads inside
    // its token stride. A gradient can arrive as a view that is not (batch 1,
    // through a transpose: token stride D, head stride T*D): copied then.
    const int64_t N = x_NHD.size(0), H = x_NHD.size(1), D = x_NHD.size(2);
    const bool strides_fit = x_NHD.stride(2) == 1 && (H == 1 || x_NHD.stride(1) >= D) &&
                             (N == 1 || x_NHD.stride(0) >= (H - 1) * x_NHD.stride(1) + D);
    const auto x = strides_fit ? x_NHD : x_NHD.contiguous();
    use_kernel_device(x);
    auto y = torch::empty(x.sizes(), x.options());
    kn::RopeArgs a;
    a.dtype = kernel_dtype(x);
    a.tokens = x.size(0);
    a.heads = static_cast<int>(x.size(1));
    a.head_dim = static_cast<int>(x.size(2));
    a.x = x.data_ptr();
    a.x_token_stride = x.stride(0);
    a.x_head_stride = x.stride(1);
    a.y = y.data_ptr();
    a.y_token_stride = y.stride(0);
    a.y_head_stride = y.stride(1);
    a.positions = pos_N.data_ptr<int64_t>();
    a.inv_freq = inv_freq.data_ptr<float>();
    a.inverse = inverse;
    kn::rope_apply(a, kernel_stream(x));
    return y;
  }
#endif
  const int64_t half = x_NHD.size(2) / 2;
  const auto angle = (pos_N.to(torch::kFloat32).unsqueeze(1) * inv_freq.unsqueeze(0)).unsqueeze(1);  // (N, 1, D/2)
  const auto c = angle.cos(), sn = inverse ? -angle.sin() : angle.sin();
  const auto x = x_NHD.to(torch::kFloat32);
  const auto x1 = x.narrow(2, 0, half), x2 = x.narrow(2, half, half);
  return torch::cat({x1 * c - x2 * sn, x2 * c + x1 * sn}, 2).to(x_NHD.scalar_type());
}

struct RopeFunction : torch::autograd::Function<RopeFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& positions,
                               const torch::Tensor& inv_freq) {
    const auto pos = positions.reshape({-1}).to(x.device(), torch::kInt64).contiguous();
    const auto freq = inv_freq.to(x.device(), torch::kFloat32).contiguous();
    const auto y = rope_rotate(x.reshape({-1, x.size(2), x.size(3)}), pos, freq, false);
    ctx->save_for_backward({pos, freq});
    return y.view(x.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& dy = grads[0];
    const auto dx = rope_rotate(dy.reshape({-1, dy.size(2), dy.size(3)}), saved[0], saved[1], true);
    return {dx.view(dy.sizes()), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor rms_norm_op(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  SP_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1),
           "rms_norm_op: weight (", weight.sizes(), ") does not match the last axis of x (", x.sizes(), ")");
  SP_CHECK(x.scalar_type() == weight.scalar_type(), "rms_norm_op: x and weight dtypes differ");
  if (x.numel() == 0) return torch::empty(x.sizes(), x.options());
  return RmsNormFunction::apply(x, weight, eps);
}

torch::Tensor swiglu_op(const torch::Tensor& gate, const torch::Tensor& up) {
  SP_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(),
           "swiglu_op: gate ", gate.sizes(), " and up ", up.sizes(), " differ in shape or dtype");
  if (gate.numel() == 0) return torch::empty(gate.sizes(), gate.options());
  return SwigluFunction::apply(gate, up);
}

torch::Tensor rope_op(const torch::Tensor& x, const torch::Tensor& positions, const torch::Tensor& inv_freq) {
  SP_CHECK(x.dim() == 4 && positions.dim() == 2 && x.size(0) == positions.size(0) && x.size(1) == positions.size(1),
           "rope_op: expected x (B, T, heads, D) and positions (B, T), got ", x.sizes(), " and ", positions.sizes());
  SP_CHECK(x.size(3) % 2 == 0 && inv_freq.numel() == x.size(3) / 2, "rope_op: inv_freq must hold D / 2 = ",
           x.size(3) / 2, " values, got ", inv_freq.numel());
  if (x.numel() == 0) return torch::empty(x.sizes(), x.options());
  return RopeFunction::apply(x, positions, inv_freq);
}

}  // namespace synthpert::engine
