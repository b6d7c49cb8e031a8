// The engine's entries to the kernels on CUDA, each against an fp64 or fp32
// reference under the rule of the kernel tests: the kernel path's error may
// be at most 2x the error of a torch peer in bf16, plus a floor (one bf16
// step at the largest reference magnitude unless a test says otherwise).
//   * The whole model with its kernel paths (packed attention, RMSNorm, RoPE,
//     SwiGLU) against a float32 CPU run, its peer the engine's plain torch
//     path in bf16: hidden states at valid positions and three weight
//     gradients, on a batch with right padding, packed segments and a
//     sequence longer than one 64-token tile, at head dims 64 and 128.
//   * A continued prefill chunk on a filled KV cache through cached
//     attention's kernel, then decode steps through the paged kernel
//     (split-K on a row of 290 tokens), its peer the engine's dense bf16 path.
//   * The fused LM head + cross-entropy; its peer the bf16 logits +
//     log_softmax the trainer uses elsewhere.
//   * NF4, with plain and double-quantised scales: quantisation on the
//     device byte-identical to the CPU's; nf4_linear's output and input
//     gradient on both matmul paths.
//   * LoRA: lora_linear's output and the gradients of x, A and B, with a
//     dense and an NF4 base weight.
//   * Adapter banks (serving): each row's adapter update added into the
//     base output, its peer the torch bf16 expression per adapter.
//   * The trainer's fused AdamW step over flat buffers: masters against the
//     fp64 reference, its peer the trainer's whole-buffer fp32 torch step;
//     the bf16 parameters must be the rounded masters.
// All [gpu]: skipped (exit 77) without a CUDA device.
#ifndef SYNTHPERT_NO_KERNELS

// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
#include <torch/cuda.h>

#include "engine/init_model.h"
#include "engine/kernel_launch.h"
#include "engine/linear_cross_entropy.h"
#include "engine/lora_bank.h"
#include "engine/lora_linear.h"
#include "engine/nf4_linear.h"
#include "engine/model.h"
#include "engine/paged_decode.h"
#include "engine/rowwise_ops.h"
#include "tests/reference/kernels/adamw_ref.h"
#include "tests/test_util.h"
#include "trainer/adamw.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

using namespace synthpert;
using namespace synthpert::engine;

namespace {

ForwardBatch mixed_batch(int64_t vocab) {
  const int64_t T = 97;
  ForwardBatch b;
  auto ids = torch::randint(vocab, {2, T}, torch::kInt64);
  auto valid = torch::ones({2, T}, torch::kBool);
  valid[0].narrow(0, 80, T - 80).fill_(false);  // row 0: 80 tokens, right padding
  auto segments = torch::zeros({2, T}, torch::kInt64);
  segments[1].narrow(0, 30, T - 30).fill_(1);  // row 1: 30 + 67 tokens, packed
  auto positions = torch::arange(T).repeat({2, 1});
  positions[1].narrow(0, 30, T - 30).copy_(torch::arange(T - 30));
  b.ids = ids;
  b.valid = valid;
  b.segments = segments;
  b.positions = positions;
  return b;
}

struct Run {
  torch::Tensor hidden;  // valid positions, float32 on CPU
  std::vector<torch::Tensor> grads;
};

Run run(Transformer& m, const ForwardBatch& cpu_batch, AttentionPath path, RowwisePath rowwise) {
  m.attention_path = path;
  m.rowwise_path = rowwise;
  ForwardBatch b;
  const auto dev = m.device();
  b.ids = cpu_batch.ids.to(dev);
  b.valid = cpu_batch.valid.to(dev);
  b.segments = cpu_batch.segments.to(dev);
  b.positions = cpu_batch.positions.to(dev);
  std::vector<torch::Tensor*> params = {&m.layers[0].q_proj.weight, &m.layers[1].v_proj.weight,
                                        &m.layers[1].post_attention_norm};
  for (auto* t : params) *t = t->detach().requires_grad_(true);
  const auto h = m.hidden_states(b, nullptr, /*training=*/true);
  const auto where = b.valid.reshape({-1}).nonzero().squeeze(1);
  const auto hv = h.reshape({-1, h.size(-1)}).index_select(0, where);
  torch::manual_seed(3);
  const auto w = torch::randn(hv.sizes(), torch::kFloat32).to(dev);
  (hv.to(torch::kFloat32) * w).sum().backward();
  Run r{hv.detach().to(torch::kCPU, torch::kFloat32), {}};
  for (auto* t : params) r.grads.push_back(t->grad().to(torch::kCPU, torch::kFloat32));
  for (auto* t : params) *t = t->detach();
  return r;
}

// Prefill of three rows (left padding, right padding, 290 tokens), a
// continued chunk of up to 70 tokens (all, 5 right-padded, none), then six
// decode steps; the hidden states of the chunk's valid tokens and of every
// decode step, float32 on CPU.
std::vector<torch::Tensor> decode_run(Transformer& m, AttentionPath path) {
  m.attention_path = path;
  InferenceGuard g;
  const int64_t T = 290, V = m.config().vocab_size;
  const auto dev = m.device();
  torch::manual_seed(5);
  ForwardBatch pre;
  pre.ids = torch::randint(V, {3, T}, torch::kInt64);
  pre.valid = torch::ones({3, T}, torch::kBool);
  pre.valid[0].narrow(0, 0, 100).fill_(false);
  pre.valid[1].narrow(0, 21, T - 21).fill_(false);
  pre.positions = (pre.valid.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);
  std::vector<int64_t> next = {T - 100, 21, T};
  auto cache = KVCache::create(m.config(), 3, T + 80, m.dtype(), dev);
  m.hidden_states({pre.ids.to(dev), pre.positions.to(dev), pre.valid.to(dev), {}, {}}, &cache);
  std::vector<torch::Tensor> out;
  const int64_t C = 70;
  ForwardBatch chunk;
  chunk.ids = torch::randint(V, {3, C}, torch::kInt64);
  chunk.valid = torch::ones({3, C}, torch::kBool);
  chunk.valid[1].narrow(0, 5, C - 5).fill_(false);
  chunk.valid[2].fill_(false);
  chunk.positions = torch::tensor(next).view({3, 1}) + torch::arange(C).view({1, C});
  const auto h = m.hidden_states({chunk.ids.to(dev), chunk.positions.to(dev), chunk.valid.to(dev), {}, {}}, &cache);
  out.push_back(h.to(torch::kCPU, torch::kFloat32).masked_select(chunk.valid.unsqueeze(-1)));
  next[0] += C;
  next[1] += 5;
  for (int64_t step = 0; step < 6; ++step) {
    ForwardBatch d;
    d.ids = torch::randint(V, {3, 1}, torch::kInt64).to(dev);
    d.positions = torch::tensor(next).view({3, 1}).to(dev);
    out.push_back(m.hidden_states(d, &cache).to(torch::kCPU, torch::kFloat32));
    for (auto& p : next) ++p;
  }
  return out;
}

// Floor: one bf16 step at the largest reference magnitude, unless given.
void check_within_peer(const char* what, const torch::Tensor& got, const torch::Tensor& peer,
                       const torch::Tensor& ref, double floor = -1) {
  const double err = (got - ref).abs().max().item<double>();
  const double peer_err = (peer - ref).abs().max().item<double>();
  if (floor < 0) floor = ref.abs().max().item<double>() / 128.0;
  INFO(what << ": kernel path err " << err << ", bf16 peer err " << peer_err << ", floor " << floor);
  CHECK(std::isfinite(err));
  CHECK(err <= 2 * peer_err + floor);
}

}  // namespace

TEST_CASE("the engine's kernel paths on CUDA are as close to fp32 as its torch bf16 path",
          "[gpu][engine_dispatch][engine_kernels]") {
  // main() has found a CUDA device; libtorch must see it too.
  if (!torch::cuda::is_available()) FAIL("libtorch sees no CUDA device (a CPU-only libtorch?)");
  test::TempDir dir("engine-kernels-gpu");
  for (int64_t head_dim : {64, 128}) {
    INFO("head_dim " << head_dim);
    auto c = preset_config(Arch::kLlama, "tiny");
    c.vocab_size = 101;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = head_dim;
    c.hidden_size = 4 * head_dim;
    c.intermediate_size = 160;
    c.num_hidden_layers = 2;
    InitOptions io;
    io.seed = 17;
    io.jitter = true;
    const std::string path = dir.path + "/d" + std::to_string(head_dim);
    init_model(c, path, io);
    LoadOptions cpu_opts;
    auto ref_model = Transformer::load(path, cpu_opts);
    LoadOptions gpu_opts;
    gpu_opts.device = torch::Device("cuda");
    gpu_opts.dtype = torch::kBFloat16;
    auto gpu_model = Transformer::load(path, gpu_opts);
    REQUIRE(packed_attention_kernel_supports(gpu_model.device(), torch::kBFloat16, head_dim));
    REQUIRE(kernels_apply(gpu_model.device(), torch::kBFloat16));

    torch::manual_seed(11);
    const auto batch = mixed_batch(c.vocab_size);
    const Run ref = run(ref_model, batch, AttentionPath::kDense, RowwisePath::kTorch);
    const Run dense = run(gpu_model, batch, AttentionPath::kDense, RowwisePath::kTorch);
    const Run packed = run(gpu_model, batch, AttentionPath::kAuto, RowwisePath::kAuto);
    check_within_peer("hidden", packed.hidden, dense.hidden, ref.hidden);
    check_within_peer("d q_proj[0]", packed.grads[0], dense.grads[0], ref.grads[0]);
    check_within_peer("d v_proj[1]", packed.grads[1], dense.grads[1], ref.grads[1]);
    check_within_peer("d post_attention_norm[1]", packed.grads[2], dense.grads[2], ref.grads[2]);

    // A continued chunk (cached attention's kernel, kAuto) and decode steps
    // (the paged kernel) against the dense bf16 path.
    REQUIRE(paged_decode_kernel_supports(gpu_model.device(), torch::kBFloat16, head_dim));
    {
      auto probe = KVCache::create(gpu_model.config(), 1, 16, torch::kBFloat16, gpu_model.device());
      probe.lengths = {1};
      gpu_model.attention_path = AttentionPath::kAuto;
      REQUIRE(gpu_model.continues_packed(&probe));
    }
    const auto ref_steps = decode_run(ref_model, AttentionPath::kDense);
    const auto dense_steps = decode_run(gpu_model, AttentionPath::kDense);
    const auto paged_steps = decode_run(gpu_model, AttentionPath::kAuto);
    for (size_t i = 0; i < ref_steps.size(); ++i) {
      INFO((i == 0 ? std::string("continued chunk") : "decode step " + std::to_string(i - 1)));
      check_within_peer("cached hidden", paged_steps[i], dense_steps[i], ref_steps[i]);
    }
  }
}

TEST_CASE("fused LM head + cross-entropy on CUDA is as close to fp64 as bf16 logits + log_softmax",
          "[gpu][engine_dispatch][engine_fused_ce]") {
  if (!torch::cuda::is_available()) FAIL("libtorch sees no CUDA device (a CPU-only libtorch?)");
  REQUIRE(kernels_apply(torch::Device("cuda"), torch::kBFloat16));
  torch::manual_seed(21);
  // 1500 tokens over a 50,257 vocabulary: two chunks of the kernel.
  const int64_t N = 1500, C = 192, V = 50257;
  const auto dev = torch::Device("cuda");
  const auto h_bf = torch::randn({N, C}).to(torch::kBFloat16);
  const auto w_bf = (torch::randn({V, C}) * 0.1).to(torch::kBFloat16);
  auto t = torch::randint(V, {N}, torch::kInt64);
  t.index_put_({torch::arange(0, N, 4)}, -100);
  const auto counted = t.ne(-100);
  const auto safe_t = torch::where(counted, t, torch::zeros_like(t));
  const double upstream = 1.0 / static_cast<double>(counted.sum().item<int64_t>());

  // Loss sum and gradients of one computation on `h`, `w` (autograd).
  auto torch_loss = [&](const torch::Tensor& h, const torch::Tensor& w) {
    auto logits = torch::matmul(h, w.t());  // the peer: bf16 logits, then float32 (Transformer::logits)
    if (logits.scalar_type() != torch::kFloat64) logits = logits.to(torch::kFloat32);
    const auto logp = torch::log_softmax(logits, -1);
    return -(logp.gather(1, safe_t.to(h.device()).unsqueeze(1)).squeeze(1) * counted.to(h.device())).sum();
  };
  auto ref_h = h_bf.to(torch::kFloat64).requires_grad_(true), ref_w = w_bf.to(torch::kFloat64).requires_grad_(true);
  const auto ref = torch_loss(ref_h, ref_w);
  (ref * upstream).backward();

  auto peer_h = h_bf.to(dev).requires_grad_(true), peer_w = w_bf.to(dev).requires_grad_(true);
  const auto peer = torch_loss(peer_h, peer_w);
  (peer * upstream).backward();

  auto h = h_bf.to(dev).requires_grad_(true), w = w_bf.to(dev).requires_grad_(true);
  const auto loss = linear_cross_entropy_sum(h, w, t.to(dev));
  (loss * upstream).backward();

  const auto ref_loss = ref.detach().reshape({1});
  // The loss is a sum over ~1,100 tokens: a floor of 1e-4 of it, not a bf16 step.
  check_within_peer("loss", loss.detach().to(torch::kCPU, torch::kFloat64).reshape({1}),
                    peer.detach().to(torch::kCPU, torch::kFloat64).reshape({1}), ref_loss,
                    1e-4 * ref_loss.abs().item<double>());
  auto host = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); };
  check_within_peer("dhidden", host(h.grad()), host(peer_h.grad()), ref_h.grad());
  check_within_peer("dweight", host(w.grad()), host(peer_w.grad()), ref_w.grad());
}

TEST_CASE("NF4 on CUDA: quantisation as on the CPU, nf4_linear as close to fp64 as a bf16 matmul",
          "[gpu][engine_dispatch][engine_nf4]") {
  if (!torch::cuda::is_available()) FAIL("libtorch sees no CUDA device (a CPU-only libtorch?)");
  torch::manual_seed(31);
  const auto dev = torch::Device("cuda");
  const int64_t O = 200, I = 136;  // 27,200 values: 425 blocks, blocks straddle rows
  const auto w_bf = (torch::randn({O, I}) * 0.05).to(torch::kBFloat16);
  for (bool dq : {false, true}) {
    INFO("double quantisation " << dq);
    const auto gpu_q = std::make_shared<Nf4Weight>(nf4_quantize_device(w_bf.to(dev), dq));
    const auto cpu_q = nf4_quantize(w_bf, dq);
    CHECK(torch::equal(gpu_q->packed.cpu(), cpu_q.packed));
    if (!dq) CHECK(torch::equal(gpu_q->absmax.cpu(), cpu_q.absmax));
    // Double quantised: the mean of the scales is summed in another order on
    // the GPU; equal after rounding to fp32 except at a tie, when the 8-bit
    // codes may legitimately differ.
    const float offset = dq ? gpu_q->absmax_offset.cpu().item<float>() : 0.f;
    if (dq) CHECK(std::abs(offset - cpu_q.absmax_offset.item<float>()) <= std::abs(offset) * 1.2e-7f);
    const bool same_scales = !dq || offset == cpu_q.absmax_offset.item<float>();
    if (dq && same_scales) {
      CHECK(torch::equal(gpu_q->absmax_code.cpu(), cpu_q.absmax_code));
      CHECK(torch::equal(gpu_q->absmax_scale.cpu(), cpu_q.absmax_scale));
    }
    const auto w_deq = nf4_dequantize(gpu_q->to(torch::kCPU));  // bf16 on the CPU, from the GPU's scales
    if (same_scales) CHECK(torch::equal(w_deq, nf4_dequantize(cpu_q)));
    CHECK(torch::equal(nf4_dequantize_device(*gpu_q).cpu(), w_deq));

    for (int64_t rows : {5, 100}) {  // the fused kernel (<= 16 rows) and dequantise + cuBLAS
      INFO("rows " << rows);
      const auto x_bf = torch::randn({rows, I}).to(torch::kBFloat16);
      const auto dy_bf = torch::randn({rows, O}).to(torch::kBFloat16);
      auto xr = x_bf.to(torch::kFloat64).requires_grad_(true);
      const auto ref = torch::matmul(xr, w_deq.to(torch::kFloat64).t());
      (ref * dy_bf.to(torch::kFloat64)).sum().backward();
      auto xp = x_bf.to(dev).requires_grad_(true);
      const auto peer = torch::matmul(xp, w_deq.to(dev).t());
      (peer * dy_bf.to(dev)).sum().backward();
      auto x = x_bf.to(dev).requires_grad_(true);
      const auto y = nf4_linear(x, gpu_q);
      (y * dy_bf.to(dev)).sum().backward();
      check_within_peer("y", y.detach().to(torch::kCPU, torch::kFloat64), peer.detach().to(torch::kCPU, torch::kFloat64),
                        ref.detach());
      check_within_peer("dx", x.grad().to(torch::kCPU, torch::kFloat64), xp.grad().to(torch::kCPU, torch::kFloat64),
                        xr.grad());
    }
  }
}

TEST_CASE("LoRA on CUDA: lora_linear as close to fp64 as the torch bf16 expression",
          "[gpu][engine_dispatch][engine_lora]") {
  if (!torch::cuda::is_available()) FAIL("libtorch sees no CUDA device (a CPU-only libtorch?)");
  REQUIRE(kernels_apply(torch::Device("cuda"), torch::kBFloat16));
  torch::manual_seed(41);
  const auto dev = torch::Device("cuda");
  const int64_t N = 77, K = 192, O = 136, R = 8;
  for (bool nf4 : {false, true}) {
    INFO("NF4 base " << nf4);
    const auto w_bf = (torch::randn({O, K}) * 0.05).to(torch::kBFloat16);
    Linear base;
    if (nf4) {
      base.nf4 = std::make_shared<Nf4Weight>(nf4_quantize_device(w_bf.to(dev)));
    } else {
      base.weight = w_bf.to(dev);
    }
    const auto w_used = base.dense_weight().to(torch::kCPU);  // what both sides multiply by
    const auto a_bf = (torch::randn({R, K}) * 0.1).to(torch::kBFloat16);
    const auto b_bf = (torch::randn({O, R}) * 0.1).to(torch::kBFloat16);
    const auto x_bf = torch::randn({N, K}).to(torch::kBFloat16), dy_bf = torch::randn({N, O}).to(torch::kBFloat16);
    const double s = 2.0;
    auto expr = [&](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b) {
      return torch::mm(x, w.t()) + torch::mm(torch::mm(x, a.t()), b.t()) * s;
    };
    auto xr = x_bf.to(torch::kFloat64).requires_grad_(true), ar = a_bf.to(torch::kFloat64).requires_grad_(true),
         br = b_bf.to(torch::kFloat64).requires_grad_(true);
    const auto ref = expr(xr, w_used.to(torch::kFloat64), ar, br);
    (ref * dy_bf.to(torch::kFloat64)).sum().backward();
    auto xp = x_bf.to(dev).requires_grad_(true), ap = a_bf.to(dev).requires_grad_(true),
         bp = b_bf.to(dev).requires_grad_(true);
    const auto peer = expr(xp, w_used.to(dev), ap, bp);
    (peer * dy_bf.to(dev)).sum().backward();
    LoraWeights lora;
    lora.A = a_bf.to(dev).requires_grad_(true);
    lora.B = b_bf.to(dev).requires_grad_(true);
    lora.scale = s;
    auto x = x_bf.to(dev).requires_grad_(true);
    const auto y = lora_linear(x, base, lora);
    (y * dy_bf.to(dev)).sum().backward();
    auto host = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); };
    check_within_peer("y", host(y), host(peer), ref.detach());
    check_within_peer("dx", host(x.grad()), host(xp.grad()), xr.grad());
    check_within_peer("dA", host(lora.A.grad()), host(ap.grad()), ar.grad());
    check_within_peer("dB", host(lora.B.grad()), host(bp.grad()), br.grad());
  }
}

TEST_CASE("Adapter bank on CUDA: per-row adapters as close to fp64 as the torch bf16 expression",
          "[gpu][engine_dispatch][engine_lora_bank]") {
  if (!torch::cuda::is_available()) FAIL("libtorch sees no CUDA device (a CPU-only libtorch?)");
  REQUIRE(kernels_apply(torch::Device("cuda"), torch::kBFloat16));
  torch::manual_seed(43);
  const auto dev = torch::Device("cuda");
  // 5 rows of 37 tokens; adapter 1 of rank 5 zero-padded to the bank's 16.
  // Adapter 0's two rows (74 tokens) go dense, adapters 1 and 2 through the
  // gather kernel.
  const int64_t M = 3, R = 16, K = 192, O = 136, T = 37;
  const std::vector<int64_t> rows = {2, -1, 0, 1, 0};
  const int64_t N = static_cast<int64_t>(rows.size()) * T;
  LoraBank cpu;
  cpu.A = (torch::randn({M, R, K}) * 0.1).to(torch::kBFloat16);
  cpu.B = (torch::randn({M, O, R}) * 0.1).to(torch::kBFloat16);
  cpu.A[1].narrow(0, 5, R - 5).zero_();
  cpu.B[1].narrow(1, 5, R - 5).zero_();
  cpu.scale_values = {2.0, 0.5, -1.0};
  LoraBank bank = cpu;
  bank.A = cpu.A.to(dev), bank.B = cpu.B.to(dev);
  bank.scales = torch::tensor(cpu.scale_values, torch::kFloat32).to(dev);
  const auto x_bf = torch::randn({N, K}).to(torch::kBFloat16), y0_bf = torch::randn({N, O}).to(torch::kBFloat16);
  auto ref = y0_bf.to(torch::kFloat64);
  auto peer = y0_bf.to(dev);
  for (size_t b = 0; b < rows.size(); ++b) {
    const int64_t i = rows[b];
    if (i < 0) continue;
    const auto span = [&](const torch::Tensor& t) { return t.narrow(0, static_cast<int64_t>(b) * T, T); };
    const auto xd = span(x_bf).to(torch::kFloat64);
    span(ref).add_(torch::mm(torch::mm(xd, cpu.A[i].to(torch::kFloat64).t()), cpu.B[i].to(torch::kFloat64).t()) *
                   cpu.scale_values[i]);
    const auto xp = span(x_bf).to(dev);
    span(peer).add_(torch::mm(torch::mm(xp, bank.A[i].t()), bank.B[i].t()) * cpu.scale_values[i]);
  }
  auto y = y0_bf.to(dev);
  apply_lora_bank(y, x_bf.to(dev), bank, AdapterRouting::for_rows(rows, T, M, dev));
  const auto got = y.to(torch::kCPU);
  check_within_peer("y", got.to(torch::kFloat64), peer.to(torch::kCPU, torch::kFloat64), ref);
  CHECK(torch::equal(got.narrow(0, T, T), y0_bf.narrow(0, T, T)));  // row 1: no adapter
}

TEST_CASE("the trainer's fused AdamW step on CUDA is as close to fp64 as its torch fp32 step",
          "[gpu][engine_dispatch][engine_adamw]") {
  if (!torch::cuda::is_available()) FAIL("libtorch sees no CUDA device (a CPU-only libtorch?)");
  REQUIRE(kernels_apply(torch::Device("cuda"), torch::kBFloat16));
  torch::manual_seed(51);
  const torch::Device dev("cuda");
  // Packed back to back as a ParamSet packs them: most slices start off a
  // multiple of 4 elements (the kernel's scalar path); 65539 spans two chunks.
  const std::vector<int64_t> sizes = {1, 5, 123, 1023, 65539, 4096};
  std::vector<synthpert::trainer::ParamEntry> entries;
  int64_t n = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    entries.push_back({"p" + std::to_string(i), (torch::randn({sizes[i]}) * 0.5).to(dev, torch::kBFloat16), n,
                       i % 2 == 0});
    n += sizes[i];
  }
  auto master = torch::empty({n}, torch::TensorOptions().device(dev));
  for (const auto& e : entries) master.narrow(0, e.offset, e.param.numel()).copy_(e.param);
  auto peer_master = master.clone();
  const auto decay_mask = torch::zeros({n}, torch::TensorOptions().device(dev));
  for (const auto& e : entries)
    if (e.decay) decay_mask.narrow(0, e.offset, e.param.numel()).fill_(1.0);
  std::vector<double> ref_p(static_cast<size_t>(n)), ref_m(ref_p.size()), ref_v(ref_p.size());
  {
    const auto h = master.to(torch::kCPU, torch::kFloat64);
    for (int64_t k = 0; k < n; ++k) ref_p[k] = h[k].item<double>();
  }
  synthpert::trainer::AdamWOptions o;
  o.weight_decay = 0.05;
  synthpert::trainer::AdamW fused(n, dev, o), peer(n, dev, o);
  const std::vector<double> lrs = {1e-2, 3e-3, 2e-2};
  for (size_t s = 0; s < lrs.size(); ++s) {
    const auto grad = torch::randn({n}).to(dev);
    REQUIRE(fused.fused_step(master, grad, entries, lrs[s]));
    peer.step(peer_master, grad, decay_mask, lrs[s]);
    const auto g = grad.to(torch::kCPU, torch::kFloat64);
    const auto* gp = g.data_ptr<double>();
    synthpert::reference::AdamWHyper h;
    h.lr = lrs[s], h.beta1 = o.beta1, h.beta2 = o.beta2, h.eps = o.eps, h.weight_decay = o.weight_decay;
    for (const auto& e : entries) {
      const auto b = static_cast<size_t>(e.offset), len = static_cast<size_t>(e.param.numel());
      std::vector<double> p(ref_p.begin() + b, ref_p.begin() + b + len), m(ref_m.begin() + b, ref_m.begin() + b + len),
          v(ref_v.begin() + b, ref_v.begin() + b + len), gg(gp + b, gp + b + len);
      synthpert::reference::adamw_step_ref(p, gg, m, v, int64_t(s + 1), h, e.decay);
      std::copy(p.begin(), p.end(), ref_p.begin() + b);
      std::copy(m.begin(), m.end(), ref_m.begin() + b);
      std::copy(v.begin(), v.end(), ref_v.begin() + b);
    }
  }
  CHECK(fused.steps() == 3);
  const auto ref = torch::from_blob(ref_p.data(), {n}, torch::kFloat64).clone();
  const auto host = [](const torch::Tensor& t) { return t.to(torch::kCPU, torch::kFloat64); };
  // Floor: half an fp32 ulp at the largest master.
  check_within_peer("master", host(master), host(peer_master), ref, ref.abs().max().item<double>() * std::ldexp(1.0, -24));
  for (const auto& e : entries)
    CHECK(torch::equal(e.param, master.narrow(0, e.offset, e.param.numel()).to(torch::kBFloat16)));
}

#endif  // SYNTHPERT_NO_KERNELS
