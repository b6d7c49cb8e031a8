// Packed attention (engine/packed_attention.h) on CPU: the packing, the op's
// explicit backward against torch autograd through a plain masked softmax in
// float64, and the engine's packed path against its dense-mask path (hidden
// states, weight gradients, activation checkpointing, KV-cache prefill). On
// CUDA the same op calls kernels/attention; the kernels are checked against
// their reference in tests/kernels, the wiring here.
#include <catch2/catch.hpp>

#include <limits>

#include "engine/packed_attention.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

namespace {

std::vector<int64_t> to_vec64(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU).to(torch::kInt64).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// The oracle: attention of each sequence as one masked softmax over all N
// tokens, in float64, differentiated by autograd.
torch::Tensor dense_attention_oracle(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const std::vector<int64_t>& seq_of_token, bool causal, double scale) {
  const int64_t N = q.size(0), H = q.size(1), rep = H / k.size(1);
  auto allowed = torch::zeros({N, N}, torch::kBool);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j)
      allowed[i][j] = seq_of_token[i] == seq_of_token[j] && (!causal || j <= i);
  const auto kh = k.repeat_interleave(rep, 1), vh = v.repeat_interleave(rep, 1);  // (N, H, D)
  auto s = torch::einsum("ihd,jhd->hij", {q, kh}) * scale;
  s = s.masked_fill(allowed.logical_not().unsqueeze(0), -std::numeric_limits<double>::infinity());
  return torch::einsum("hij,jhd->ihd", {torch::softmax(s, -1), vh});
}

}  // namespace

TEST_CASE("pack_sequences groups valid tokens by row and segment, in order", "[engine][packed]") {
  // Row 0: right padding. Row 1: two packed segments, the second interrupted
  // by padding. Row 2: all padding (no sequence). Row 3: left padding.
  const auto valid = torch::tensor({1, 1, 1, 0, 0,  //
                                    1, 1, 0, 1, 1,  //
                                    0, 0, 0, 0, 0,  //
                                    0, 0, 1, 1, 1}, torch::kInt64)
                         .view({4, 5})
                         .to(torch::kBool);
  const auto segments = torch::tensor({0, 0, 0, 0, 0,  //
                                       3, 7, 7, 7, 3,  //
                                       0, 0, 0, 0, 0,  //
                                       0, 0, 0, 0, 0}, torch::kInt64)
                            .view({4, 5});
  const auto p = pack_sequences(valid, segments, torch::kCPU);
  CHECK(p->batch == 4);
  CHECK(p->tokens == 5);
  CHECK(p->packed == 10);
  CHECK(p->max_seqlen == 3);
  // Row 1, segment 3: slots 5, 9; segment 7: slots 6, 8.
  CHECK(to_vec64(p->token_index) == std::vector<int64_t>{0, 1, 2, 5, 9, 6, 8, 17, 18, 19});
  CHECK(to_vec64(p->cu_seqlens) == std::vector<int64_t>{0, 3, 5, 7, 10});

  const auto no_seg = pack_sequences(valid, torch::Tensor(), torch::kCPU);
  CHECK(to_vec64(no_seg->token_index) == std::vector<int64_t>{0, 1, 2, 5, 6, 8, 9, 17, 18, 19});
  CHECK(to_vec64(no_seg->cu_seqlens) == std::vector<int64_t>{0, 3, 7, 10});
  CHECK(no_seg->max_seqlen == 4);

  // pack_tokens/unpack_tokens round trip; padding slots come back as zeros.
  const auto x = torch::randn({4, 5, 2, 3}, torch::kFloat64);
  const auto back = unpack_tokens(pack_tokens(x, *p), *p);
  CHECK(torch::equal(back.masked_fill(valid.logical_not().view({4, 5, 1, 1}), 0),
                     x.masked_fill(valid.logical_not().view({4, 5, 1, 1}), 0)));
  CHECK(back.masked_select(valid.logical_not().view({4, 5, 1, 1}).expand_as(back)).abs().sum().item<double>() == 0);
}

TEST_CASE("packed_attention forward and backward match autograd of a masked softmax", "[engine][packed]") {
  torch::manual_seed(5);
  struct Case {
    std::vector<int64_t> lengths;
    int64_t heads, kv_heads, dim;
    bool causal;
  };
  const Case cases[] = {
      {{1}, 1, 1, 8, true},
      {{5, 1, 7}, 6, 2, 12, true},   // GQA 3:1, a one-token sequence
      {{9, 4}, 3, 3, 16, false},     // non-causal, no GQA
      {{13}, 4, 1, 10, true},        // multi-query
  };
  for (const auto& c : cases) {
    int64_t N = 0;
    std::vector<int64_t> seq_of_token;
    std::vector<int32_t> cu{0};
    for (size_t s = 0; s < c.lengths.size(); ++s) {
      N += c.lengths[s];
      cu.push_back(static_cast<int32_t>(N));
      seq_of_token.insert(seq_of_token.end(), c.lengths[s], static_cast<int64_t>(s));
    }
    INFO("N=" << N << " H=" << c.heads << " Hkv=" << c.kv_heads << " D=" << c.dim << " causal=" << c.causal);
    PackedSequences p;
    p.batch = 1;
    p.tokens = N;
    p.packed = N;
    p.max_seqlen = *std::max_element(c.lengths.begin(), c.lengths.end());
    p.cu_seqlens = torch::tensor(cu, torch::kInt32);
    p.token_index = torch::arange(N);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.dim));

    const auto q64 = torch::randn({N, c.heads, c.dim}, torch::kFloat64);
    const auto k64 = torch::randn({N, c.kv_heads, c.dim}, torch::kFloat64);
    const auto v64 = torch::randn({N, c.kv_heads, c.dim}, torch::kFloat64);
    const auto w = torch::randn({N, c.heads, c.dim}, torch::kFloat64);  // loss weights

    auto qo = q64.clone().requires_grad_(true), ko = k64.clone().requires_grad_(true),
         vo = v64.clone().requires_grad_(true);
    const auto ref = dense_attention_oracle(qo, ko, vo, seq_of_token, c.causal, scale);
    (ref * w).sum().backward();

    auto q = q64.to(torch::kFloat32).requires_grad_(true), k = k64.to(torch::kFloat32).requires_grad_(true),
         v = v64.to(torch::kFloat32).requires_grad_(true);
    const auto out = packed_attention(q, k, v, p, c.causal, scale);
    (out * w.to(torch::kFloat32)).sum().backward();

    const double tol = 1e-5;
    CHECK((out.to(torch::kFloat64) - ref).abs().max().item<double>() < tol);
    CHECK((q.grad().to(torch::kFloat64) - qo.grad()).abs().max().item<double>() < tol);
    CHECK((k.grad().to(torch::kFloat64) - ko.grad()).abs().max().item<double>() < tol);
    CHECK((v.grad().to(torch::kFloat64) - vo.grad()).abs().max().item<double>() < tol);
  }
}

namespace {

Transformer tiny_model(const test::TempDir& dir, Arch arch) {
  return test::small_test_model(dir.path, test::small_test_config(arch), 33);
}

// A right-padded row and a row of two packed segments.
ForwardBatch padded_and_packed_batch(int64_t vocab) {
  const int64_t T = 9;
  ForwardBatch b;
  b.ids = torch::tensor(test::random_ids(2 * T, vocab, 4)).view({2, T});
  b.valid = torch::tensor({1, 1, 1, 1, 1, 1, 0, 0, 0,  //
                           1, 1, 1, 1, 1, 1, 1, 1, 0}, torch::kInt64)
                .view({2, T})
                .to(torch::kBool);
  b.segments = torch::tensor({0, 0, 0, 0, 0, 0, 0, 0, 0,  //
                              0, 0, 0, 1, 1, 1, 1, 1, 1}, torch::kInt64)
                   .view({2, T});
  b.positions = torch::tensor({0, 1, 2, 3, 4, 5, 6, 7, 8,  //
                               0, 1, 2, 0, 1, 2, 3, 4, 5}, torch::kInt64)
                    .view({2, T});
  return b;
}

struct RunResult {
  torch::Tensor hidden;                 // valid positions only, (tokens, C)
  std::vector<torch::Tensor> grads;     // of the trainable weights below
};

RunResult run(Transformer& m, AttentionPath path, bool checkpoint, const ForwardBatch& b) {
  m.attention_path = path;
  m.checkpoint_layers = checkpoint;
  std::vector<torch::Tensor*> params = {&m.layers[0].q_proj.weight, &m.layers[0].k_proj.weight,
                                        &m.layers[1].v_proj.weight, &m.embed_tokens};
  for (auto* t : params) *t = t->detach().requires_grad_(true);
  const auto h = m.hidden_states(b, nullptr, /*training=*/true);
  const auto where = b.valid.reshape({-1}).nonzero().squeeze(1);
  const auto hv = h.reshape({-1, h.size(-1)}).index_select(0, where);
  torch::manual_seed(9);
  (hv * torch::randn(hv.sizes())).sum().backward();
  RunResult r{hv.detach(), {}};
  for (auto* t : params) r.grads.push_back(t->grad().clone());
  for (auto* t : params) *t = t->detach();
  return r;
}

}  // namespace

TEST_CASE("the engine's packed attention path equals its dense path", "[engine][packed]") {
  for (Arch arch : {Arch::kLlama, Arch::kQwen3}) {
    SECTION(arch_name(arch)) {
      test::TempDir dir("packed");
      auto m = tiny_model(dir, arch);
      const auto b = padded_and_packed_batch(m.config().vocab_size);
      const auto dense = run(m, AttentionPath::kDense, false, b);
      for (bool checkpoint : {false, true}) {
        INFO("activation checkpointing " << checkpoint);
        const auto packed = run(m, AttentionPath::kPacked, checkpoint, b);
        CHECK((packed.hidden - dense.hidden).abs().max().item<float>() < 2e-5f);
        for (size_t i = 0; i < dense.grads.size(); ++i) {
          INFO("gradient " << i);
          const float scale = dense.grads[i].abs().max().item<float>();
          CHECK(scale > 0);
          CHECK((packed.grads[i] - dense.grads[i]).abs().max().item<float>() < 2e-5f * std::max(1.f, scale));
        }
      }
    }
  }
}

TEST_CASE("packed prefill fills the KV cache the dense decode steps read", "[engine][packed][kv]") {
  test::TempDir dir("packed-kv");
  auto m = tiny_model(dir, Arch::kLlama);
  InferenceGuard g;
  // Two left-padded prompts, then two decode steps; packed prefill vs dense.
  const int64_t T = 6;
  ForwardBatch pre;
  pre.ids = torch::tensor(test::random_ids(2 * T, m.config().vocab_size, 8)).view({2, T});
  pre.valid = torch::tensor({0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, torch::kInt64).view({2, T}).to(torch::kBool);
  pre.positions = torch::tensor({0, 0, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5}, torch::kInt64).view({2, T});
  std::vector<torch::Tensor> outs[2];
  for (AttentionPath path : {AttentionPath::kDense, AttentionPath::kPacked}) {
    m.attention_path = path;
    auto cache = KVCache::create(m.config(), 2, T + 2, torch::kFloat32, torch::kCPU);
    auto& o = outs[path == AttentionPath::kPacked];
    o.push_back(m.forward(pre, &cache).masked_select(pre.valid.unsqueeze(-1)));
    for (int64_t step = 0; step < 2; ++step) {
      ForwardBatch d;
      d.ids = torch::tensor({int64_t(3 + step), int64_t(50 + step)}).view({2, 1});
      d.positions = torch::tensor({4 + step, 6 + step}).view({2, 1});
      o.push_back(m.forward(d, &cache));
    }
  }
  for (size_t i = 0; i < outs[0].size(); ++i) {
    INFO("call " << i);
    CHECK((outs[1][i] - outs[0][i]).abs().max().item<float>() < 2e-5f);
  }
}

TEST_CASE("SYNTHPERT_ATTENTION selects the attention path", "[engine][packed]") {
  ::unsetenv("SYNTHPERT_ATTENTION");
  CHECK(attention_path_from_env() == AttentionPath::kAuto);
  ::setenv("SYNTHPERT_ATTENTION", "dense", 1);
  CHECK(attention_path_from_env() == AttentionPath::kDense);
  ::setenv("SYNTHPERT_ATTENTION", "packed", 1);
  CHECK(attention_path_from_env() == AttentionPath::kPacked);
  ::setenv("SYNTHPERT_ATTENTION", "flash", 1);
  CHECK_THROWS_WITH(attention_path_from_env(), Catch::Contains("expected auto, dense or packed"));
  ::unsetenv("SYNTHPERT_ATTENTION");
  // Without the CUDA kernels, auto means dense on CPU.
  CHECK_FALSE(packed_attention_kernel_supports(torch::kCPU, torch::kBFloat16, 128));
}
