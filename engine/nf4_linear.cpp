#include "engine/nf4_linear.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "common/error.h"
#include "engine/kernel_launch.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/nf4.h"
#endif

namespace synthpert::engine {

namespace {

#if defined(SYNTHPERT_HAVE_KERNELS)
namespace kn = synthpert::kernels;

// Whether t's device runs the kernels at all (dtype limits are checked where
// they apply: quantisation takes fp32 weights too).
bool on_kernel_device(const torch::Tensor& t) { return kernels_apply(t.device(), torch::kBFloat16); }

kn::Nf4CodeTable code_table() {
  kn::Nf4CodeTable t;
  std::copy(nf4_code_values().begin(), nf4_code_values().end(), t.value);
  return t;
}

bool half_dtype(torch::ScalarType t) { return t == torch::kBFloat16 || t == torch::kFloat16; }

kn::Nf4Scales scales_of(const Nf4Weight& w) {
  kn::Nf4Scales s;
  if (!w.double_quant()) {
    s.absmax = w.absmax.data_ptr<float>();
    return s;
  }
  s.absmax_code = w.absmax_code.data_ptr<uint8_t>();
  s.absmax_scale = w.absmax_scale.data_ptr<float>();
  s.absmax_offset = w.absmax_offset.data_ptr<float>();
  std::copy(nf4_absmax_code_values().begin(), nf4_absmax_code_values().end(), s.absmax_codes.value);
  return s;
}
#endif

// dy (R, O) -> dx (R, I) = dy W.
torch::Tensor input_grad(const torch::Tensor& dy, const Nf4Weight& w) {
  return torch::matmul(dy, nf4_dequantize_device(w).to(dy.scalar_type()));
}

// Carries the weight through AutogradContext::saved_data.
struct Nf4Holder : torch::CustomClassHolder {
  std::shared_ptr<const Nf4Weight> w;
  explicit Nf4Holder(std::shared_ptr<const Nf4Weight> p) : w(std::move(p)) {}
};

struct Nf4LinearFunction : torch::autograd::Function<Nf4LinearFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const std::shared_ptr<const Nf4Weight>& w) {
    ctx->saved_data["weight"] = c10::IValue::make_capsule(c10::make_intrusive<Nf4Holder>(w));
    const auto rows = x.reshape({-1, w->in_features});
    torch::Tensor y;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (on_kernel_device(rows) && half_dtype(rows.scalar_type())) {
      const auto xr = kernel_rows(rows);
      use_kernel_device(xr);
      const int64_t N = xr.size(0), O = w->out_features, I = w->in_features;
      y = torch::empty({N, O}, xr.options());
      KernelWorkspace ws;
      kn::Nf4MatmulArgs a;
      a.dtype = kernel_dtype(xr);
      a.rows = N;
      a.out_features = O;
      a.in_features = I;
      a.x = xr.data_ptr();
      a.x_row_stride = xr.stride(0);
      a.packed = w->packed.data_ptr<uint8_t>();
      a.scales = scales_of(*w);
      a.codes = code_table();
      a.y = y.data_ptr();
      a.y_row_stride = O;
      if (N > kn::kNf4FusedMaxRows) {
        ws = kernel_workspace(xr, kn::nf4_matmul_workspace_bytes(N, O, I));
        a.workspace = ws.ptr;
        a.cublas = kernel_cublas(xr);
      }
      kn::nf4_matmul(a, kernel_stream(xr));
    } else
#endif
    {
      y = torch::mm(rows, nf4_dequantize_device(*w).to(rows.scalar_type()).t());
    }
    auto shape = x.sizes().vec();
    shape.back() = w->out_features;
    return y.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto holder = ctx->saved_data["weight"].toCapsule();
    const Nf4Weight& w = *static_cast<Nf4Holder*>(holder.get())->w;
    const auto& dy = grads[0];
    auto shape = dy.sizes().vec();
    shape.back() = w.in_features;
    const auto dx = input_grad(dy.reshape({-1, w.out_features}), w).view(shape);
    return {dx, torch::Tensor()};
  }
};

}  // namespace

Nf4Weight nf4_quantize_device(const torch::Tensor& weight, bool double_quant) {
#if defined(SYNTHPERT_HAVE_KERNELS)
  if (on_kernel_device(weight)) {
    SP_CHECK(weight.dim() == 2, "nf4_quantize_device: weight must be 2-D");
    const auto dt = weight.scalar_type();  // the kernel reads any other as float32
    SP_CHECK(dt == torch::kFloat32 || dt == torch::kBFloat16 || dt == torch::kFloat16,
             "nf4_quantize_device: weight must be f32, bf16 or f16, got ", dt);
    const int64_t O = weight.size(0), I = weight.size(1), n = O * I;
    SP_CHECK_INPUT(n % kNf4BlockSize == 0, "NF4 needs the weight's element count (", n, ") to be a multiple of ",
                   kNf4BlockSize);
    const auto wr = kernel_rows(weight);
    use_kernel_device(wr);
    Nf4Weight q;
    q.out_features = O;
    q.in_features = I;
    q.dtype = weight.scalar_type();
    const auto u8 = wr.options().dtype(torch::kUInt8), f32 = wr.options().dtype(torch::kFloat32);
    const int64_t nb = n / kNf4BlockSize;
    q.packed = torch::empty({n / 2}, u8);
    KernelWorkspace ws;
    if (double_quant) {
      q.absmax_code = torch::empty({nb}, u8);
      q.absmax_scale = torch::empty({(nb + kNf4AbsmaxBlockSize - 1) / kNf4AbsmaxBlockSize}, f32);
      q.absmax_offset = torch::empty({1}, f32);
      ws = kernel_workspace(wr, kn::nf4_quantize_workspace_bytes(O, I, true));
    } else {
      q.absmax = torch::empty({nb}, f32);
    }
    kn::Nf4QuantizeArgs a;
    a.dtype = kernel_dtype(wr);
    a.out_features = O;
    a.in_features = I;
    a.weight = wr.data_ptr();
    a.weight_row_stride = wr.stride(0);
    a.codes = code_table();
    a.packed = q.packed.data_ptr<uint8_t>();
    a.scales = scales_of(q);
    if (double_quant) a.workspace = ws.ptr;
    kn::nf4_quantize(a, kernel_stream(wr));
    return q;
  }
#endif
  if (weight.device().is_cpu()) return nf4_quantize(weight, double_quant);
  // A device without the kernels: quantise a host copy, keep the codes there.
  return nf4_quantize(weight.to(torch::kCPU), double_quant).to(weight.device());
}

torch::Tensor nf4_dequantize_device(const Nf4Weight& w) {
#if defined(SYNTHPERT_HAVE_KERNELS)
  if (on_kernel_device(w.packed) &&
      (half_dtype(w.dtype) || w.dtype == torch::kFloat32)) {  // the dtypes the kernel writes
    use_kernel_device(w.packed);
    auto out = torch::empty({w.out_features, w.in_features}, w.packed.options().dtype(w.dtype));
    kn::Nf4DequantizeArgs a;
    a.dtype = kernel_dtype(out);
    a.out_features = w.out_features;
    a.in_features = w.in_features;
    a.packed = w.packed.data_ptr<uint8_t>();
    a.scales = scales_of(w);
    a.codes = code_table();
    a.out = out.data_ptr();
    a.out_row_stride = w.in_features;
    kn::nf4_dequantize(a, kernel_stream(out));
    return out;
  }
#endif
  if (w.packed.device().is_cpu()) return nf4_dequantize(w);
  return nf4_dequantize(w.to(torch::kCPU)).to(w.packed.device());
}

torch::Tensor nf4_linear(const torch::Tensor& x, const std::shared_ptr<const Nf4Weight>& w) {
  SP_CHECK(w && x.size(-1) == w->in_features, "nf4_linear: x's last axis (", x.size(-1), ") is not in_features (",
           w ? w->in_features : -1, ")");
  return Nf4LinearFunction::apply(x, w);
}

}  // namespace synthpert::engine
