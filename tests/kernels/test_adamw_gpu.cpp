// Fused AdamW against the fp64 reference over several steps ([gpu]), every
// precision mode (fp32 parameters; bf16/f16 parameters with fp32 master and
// gradients in fp32 or the parameter dtype). Tensors of 1, 5, 123, 1023,
// 4096 and 65539 elements (two chunks), with and without weight decay, some
// placed at offsets that are not multiples of 4 elements (scalar path). A
// list of 40 tensors exercises more than one launch (32 tensors per launch);
// [large] adds 21M elements (320+ chunks split across launches mid-tensor).
//
// Tolerance rule: the peer is libtorch's torch::optim::AdamW on fp32 CPU
// tensors (what torch does with fp32 master weights; its moments recomputed
// with the same fp32 ops, since the optimizer does not expose them); the kernel's master,
// exp_avg and exp_avg_sq must be within 2x the peer's max error against the
// fp64 reference plus half an fp32 ulp; a bf16/f16 parameter must equal its
// master rounded to the dtype.
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/adamw.h"
#include "tests/kernels/ref_test_util.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/reference/kernels/adamw_ref.h"

namespace {

using namespace synthpert::test;
using synthpert::kernels::DType;
namespace k = synthpert::kernels;
using synthpert::reference::AdamWHyper;

constexpr int kSteps = 4;

at::ScalarType scalar_of(DType t) {
  return t == DType::kF32 ? at::kFloat : t == DType::kBF16 ? at::kBFloat16 : at::kHalf;
}

// All tensors of one array live in one device buffer at these element offsets.
struct Layout {
  std::vector<int64_t> sizes, offsets;
  int64_t total = 0;
  explicit Layout(const std::vector<int64_t>& s) : sizes(s) {
    for (size_t i = 0; i < s.size(); ++i) {
      // Every third tensor starts 1 element past a multiple of 4 (unaligned:
      // the scalar path), the others on a multiple of 4 (16-byte accesses).
      const int64_t start = (total + 3) / 4 * 4 + (i % 3 == 2 ? 1 : 0);
      offsets.push_back(start);
      total = start + s[i];
    }
  }
};

void run_case(const std::vector<int64_t>& sizes, DType param_dtype, DType grad_dtype) {
  const at::ScalarType pdt = scalar_of(param_dtype), gdt = scalar_of(grad_dtype);
  const bool master = param_dtype != DType::kF32;
  INFO("tensors=" << sizes.size() << " param=" << at::toString(pdt) << " grad=" << at::toString(gdt));
  AdamWHyper h;
  h.lr = 2e-2;
  h.beta1 = 0.9;
  h.beta2 = 0.95;
  h.eps = 1e-8;
  h.weight_decay = 0.1;
  const Layout L(sizes);
  // Host images of the device arrays (fp32 master/state, dtype param/grad).
  at::Tensor p32 = at::randn({L.total}, at::kFloat), m32 = at::zeros({L.total}, at::kFloat),
             v32 = at::zeros({L.total}, at::kFloat);
  DeviceBuffer d_param(size_t(L.total) * at::elementSize(pdt)), d_master(size_t(L.total) * 4),
      d_grad(size_t(L.total) * at::elementSize(gdt)), d_m(size_t(L.total) * 4), d_v(size_t(L.total) * 4);
  const at::Tensor p_dt = p32.to(pdt);
  d_param.upload(p_dt.data_ptr(), d_param.bytes());
  d_master.upload(p32.data_ptr(), d_master.bytes());
  d_m.upload(m32.data_ptr(), d_m.bytes());
  d_v.upload(v32.data_ptr(), d_v.bytes());

  k::AdamWArgs a;
  a.param_dtype = param_dtype;
  a.grad_dtype = grad_dtype;
  a.lr = h.lr;
  a.beta1 = h.beta1;
  a.beta2 = h.beta2;
  a.eps = h.eps;
  a.weight_decay = h.weight_decay;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const size_t off = size_t(L.offsets[i]);
    k::AdamWTensor t;
    t.param = static_cast<char*>(master ? d_param.get() : d_master.get()) + off * (master ? at::elementSize(pdt) : 4);
    t.master = master ? d_master.as<float>() + off : nullptr;
    t.grad = static_cast<const char*>(d_grad.get()) + off * at::elementSize(gdt);
    t.exp_avg = d_m.as<float>() + off;
    t.exp_avg_sq = d_v.as<float>() + off;
    t.numel = sizes[i];
    t.weight_decay = i % 2 == 0;
    a.tensors.push_back(t);
  }

  // Reference (fp64) and peer (libtorch fp32 AdamW, one optimizer per decay group).
  std::vector<std::vector<double>> rp, rm, rv;
  std::vector<torch::Tensor> peer_decay, peer_plain, peer_all;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const at::Tensor init = p32.narrow(0, L.offsets[i], sizes[i]);
    rp.push_back(vector_of(init));
    rm.emplace_back(size_t(sizes[i]), 0.0);
    rv.emplace_back(size_t(sizes[i]), 0.0);
    torch::Tensor p = init.clone().set_requires_grad(true);
    (i % 2 == 0 ? peer_decay : peer_plain).push_back(p);
    peer_all.push_back(p);
  }
  auto opts = [&](double wd) {
    return torch::optim::AdamWOptions(h.lr).betas(std::make_tuple(h.beta1, h.beta2)).eps(h.eps).weight_decay(wd);
  };
  torch::optim::AdamW opt_decay(peer_decay, opts(h.weight_decay)), opt_plain(peer_plain, opts(0.0));
  // The optimizer's moments are not public API (their key changed between
  // libtorch versions): the peer moments are torch.optim.AdamW's ops, in fp32.
  std::vector<at::Tensor> peer_m_all, peer_v_all;
  for (int64_t n : sizes) {
    peer_m_all.push_back(at::zeros({n}, at::kFloat));
    peer_v_all.push_back(at::zeros({n}, at::kFloat));
  }

  for (int step = 1; step <= kSteps; ++step) {
    // Gradients in the gradient dtype; the reference and peer see the same values.
    const at::Tensor g = (at::randn({L.total}, at::kFloat) * std::pow(2.0, step)).to(gdt).contiguous();
    d_grad.upload(g.data_ptr(), d_grad.bytes());
    a.step = step;
    k::adamw_step(a, nullptr);
    for (size_t i = 0; i < sizes.size(); ++i) {
      const at::Tensor gi = g.narrow(0, L.offsets[i], sizes[i]).to(at::kFloat);
      synthpert::reference::adamw_step_ref(rp[i], vector_of(gi), rm[i], rv[i], step, h, i % 2 == 0);
      peer_all[i].mutable_grad() = gi.clone();
      peer_m_all[i].mul_(h.beta1).add_(gi, 1.0 - h.beta1);
      peer_v_all[i].mul_(h.beta2).addcmul_(gi, gi, 1.0 - h.beta2);
    }
    opt_decay.step();
    opt_plain.step();
  }
  cuda_ok(cudaDeviceSynchronize(), "adamw_step");

  auto download_f32 = [&](const DeviceBuffer& b) {
    at::Tensor t = at::empty({L.total}, at::kFloat);
    b.download(t.data_ptr(), size_t(L.total) * 4);
    return t;
  };
  const at::Tensor got_p = download_f32(d_master), got_m = download_f32(d_m), got_v = download_f32(d_v);
  at::Tensor got_param = at::empty({L.total}, pdt);
  d_param.download(got_param.data_ptr(), d_param.bytes());
  double err_p = 0, err_m = 0, err_v = 0, peer_p = 0, peer_m = 0, peer_v = 0, max_p = 0, max_m = 0, max_v = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto ref = [&](const std::vector<double>& v) { return tensor_of(v, {sizes[i]}); };
    auto mine = [&](const at::Tensor& t) { return t.narrow(0, L.offsets[i], sizes[i]).to(at::kDouble); };
    const at::Tensor ref_p = ref(rp[i]), ref_m = ref(rm[i]), ref_v = ref(rv[i]);
    err_p = std::max(err_p, max_abs_err(mine(got_p), ref_p));
    err_m = std::max(err_m, max_abs_err(mine(got_m), ref_m));
    err_v = std::max(err_v, max_abs_err(mine(got_v), ref_v));
    peer_p = std::max(peer_p, max_abs_err(peer_all[i].detach(), ref_p));
    peer_m = std::max(peer_m, max_abs_err(peer_m_all[i], ref_m));
    peer_v = std::max(peer_v, max_abs_err(peer_v_all[i], ref_v));
    max_p = std::max(max_p, max_abs(ref_p));
    max_m = std::max(max_m, max_abs(ref_m));
    max_v = std::max(max_v, max_abs(ref_v));
    if (master) CHECK(at::equal(got_param.narrow(0, L.offsets[i], sizes[i]), mine(got_p).to(pdt)));
  }
  auto half_ulp32 = [](double x) { return x > 0 ? std::ldexp(1.0, int(std::floor(std::log2(x))) - 24) : 0.0; };
  check_within_peer("param (master)", err_p, peer_p, half_ulp32(max_p));
  check_within_peer("exp_avg", err_m, peer_m, half_ulp32(max_m));
  check_within_peer("exp_avg_sq", err_v, peer_v, half_ulp32(max_v));
}

const std::vector<int64_t> kSizes = {1, 5, 123, 1023, 4096, 65539, 7};

}  // namespace

TEST_CASE("adamw_step matches the reference (fp32 parameters)", "[gpu][adamw]") {
  run_case(kSizes, DType::kF32, DType::kF32);
}

TEST_CASE("adamw_step matches the reference (bf16/f16 parameters with fp32 master)", "[gpu][adamw]") {
  run_case(kSizes, DType::kBF16, DType::kBF16);
  run_case(kSizes, DType::kBF16, DType::kF32);
  run_case(kSizes, DType::kF16, DType::kF16);
  run_case(kSizes, DType::kF16, DType::kF32);
}

TEST_CASE("adamw_step over more tensors than one launch takes", "[gpu][adamw]") {
  std::vector<int64_t> sizes;
  for (int i = 0; i < 40; ++i) sizes.push_back(1 + (i * 37) % 300);
  run_case(sizes, DType::kBF16, DType::kF32);
}

TEST_CASE("adamw_step over more chunks than one launch takes", "[gpu][adamw][large]") {
  run_case({7000000, 3, 7000000, 7000001}, DType::kF32, DType::kF32);
}

#endif  // SYNTHPERT_NO_KERNELS
