#include "engine/packed_attention.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "common/error.h"
#include "engine/kernel_launch.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/attention.h"
#endif

namespace synthpert::engine {

std::shared_ptr<const PackedSequences> pack_sequences(const torch::Tensor& valid_BT,
                                                      const torch::Tensor& segments_BT,
                                                      torch::Device device) {
  SP_CHECK(valid_BT.dim() == 2, "pack_sequences: valid must be (batch, tokens)");
  const auto valid = valid_BT.to(torch::kCPU).to(torch::kBool).contiguous();
  const int64_t B = valid.size(0), T = valid.size(1);
  torch::Tensor seg;
  if (segments_BT.defined()) {
    SP_CHECK(segments_BT.sizes() == valid_BT.sizes(), "pack_sequences: segments must match valid");
    seg = segments_BT.to(torch::kCPU).to(torch::kInt64).contiguous();
  }
  const bool* vp = valid.data_ptr<bool>();
  const int64_t* sp = seg.defined() ? seg.data_ptr<int64_t>() : nullptr;

  std::vector<int64_t> index;
  std::vector<int32_t> cu{0};
  int64_t max_len = 0;
  auto close_run = [&] {
    const int64_t len = static_cast<int64_t>(index.size()) - cu.back();
    if (len == 0) return;
    cu.push_back(static_cast<int32_t>(index.size()));
    max_len = std::max(max_len, len);
  };
  std::map<int64_t, std::vector<int64_t>> groups;  // segment id -> flat indices, in token order
  for (int64_t b = 0; b < B; ++b) {
    if (!sp) {
      for (int64_t t = 0; t < T; ++t)
        if (vp[b * T + t]) index.push_back(b * T + t);
      close_run();
      continue;
    }
    groups.clear();
    for (int64_t t = 0; t < T; ++t)
      if (vp[b * T + t]) groups[sp[b * T + t]].push_back(b * T + t);
    for (const auto& [id, tokens] : groups) {
      (void)id;
      index.insert(index.end(), tokens.begin(), tokens.end());
      close_run();
    }
  }
  SP_CHECK(index.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
           "pack_sequences: too many tokens for int32 offsets");
  auto p = std::make_shared<PackedSequences>();
  p->batch = B;
  p->tokens = T;
  p->packed = static_cast<int64_t>(index.size());
  p->max_seqlen = max_len;
  p->token_index = torch::tensor(index, torch::kInt64).to(device);
  p->cu_seqlens = torch::tensor(cu, torch::kInt32).to(device);
  return p;
}

torch::Tensor pack_tokens(const torch::Tensor& x, const PackedSequences& p) {
  SP_CHECK(x.dim() == 4 && x.size(0) == p.batch && x.size(1) == p.tokens,
           "pack_tokens: expected (", p.batch, ", ", p.tokens, ", heads, D), got ", x.sizes());
  return x.reshape({p.batch * p.tokens, x.size(2), x.size(3)}).index_select(0, p.token_index);
}

torch::Tensor unpack_tokens(const torch::Tensor& x, const PackedSequences& p) {
  SP_CHECK(x.dim() == 3 && x.size(0) == p.packed, "unpack_tokens: expected (", p.packed,
           ", heads, D), got ", x.sizes());
  auto full = torch::zeros({p.batch * p.tokens, x.size(1), x.size(2)}, x.options());
  return full.index_copy(0, p.token_index, x).view({p.batch, p.tokens, x.size(1), x.size(2)});
}

bool packed_attention_kernel_supports(torch::Device device, torch::ScalarType dtype, int64_t head_dim) {
  return kernels_apply(device, dtype) && (head_dim == 64 || head_dim == 128);
}

namespace {

struct AttentionResult {
  torch::Tensor out_NHD, lse_HN;
};
struct AttentionGrads {
  torch::Tensor dq, dk, dv;
};

// ---- torch math, any device: float32, one sequence at a time ---------------

// Scores (H, L, L) of one sequence, causal-masked; q (L, H, D), k (L, Hkv, D).
torch::Tensor sequence_scores(const torch::Tensor& q, const torch::Tensor& k, int64_t rep, bool causal,
                              double scale) {
  const auto qh = q.transpose(0, 1);                               // (H, L, D)
  const auto kh = k.transpose(0, 1).repeat_interleave(rep, 0);     // (H, L, D): head h reads kv h / rep
  auto s = torch::matmul(qh, kh.transpose(1, 2)) * scale;          // (H, L, L)
  if (causal) {
    const int64_t L = q.size(0);
    const auto above = torch::ones({L, L}, q.options().dtype(torch::kBool)).triu(1);
    s = s.masked_fill(above, -std::numeric_limits<float>::infinity());
  }
  return s;
}

AttentionResult forward_math(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const std::vector<int32_t>& cu, bool causal, double scale) {
  const int64_t N = q.size(0), H = q.size(1), rep = H / k.size(1);
  const auto qf = q.to(torch::kFloat32), kf = k.to(torch::kFloat32), vf = v.to(torch::kFloat32);
  auto out = torch::zeros(qf.sizes(), qf.options());
  auto lse = torch::full({H, N}, -std::numeric_limits<float>::infinity(), qf.options());
  for (size_t s = 0; s + 1 < cu.size(); ++s) {
    const int64_t a = cu[s], L = cu[s + 1] - cu[s];
    if (L == 0) continue;
    const auto scores = sequence_scores(qf.narrow(0, a, L), kf.narrow(0, a, L), rep, causal, scale);
    const auto l = torch::logsumexp(scores, -1);                        // (H, L)
    const auto probs = torch::exp(scores - l.unsqueeze(-1));
    const auto vh = vf.narrow(0, a, L).transpose(0, 1).repeat_interleave(rep, 0);
    out.narrow(0, a, L).copy_(torch::matmul(probs, vh).transpose(0, 1));
    lse.narrow(1, a, L).copy_(l);
  }
  return {out.to(q.scalar_type()), lse};
}

// The FlashAttention backward from the saved log-sum-exp:
//   P = exp(scale q k^T - lse), dV = P^T dO, dP = dO V^T,
//   dS = P * (dP - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q,
// with dK and dV summed over the query heads that share a kv head.
AttentionGrads backward_math(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& out, const torch::Tensor& dout, const torch::Tensor& lse,
                             const std::vector<int32_t>& cu, bool causal, double scale) {
  const int64_t H = q.size(1), Hkv = k.size(1), D = q.size(2), rep = H / Hkv;
  const auto qf = q.to(torch::kFloat32), kf = k.to(torch::kFloat32), vf = v.to(torch::kFloat32);
  const auto of = out.to(torch::kFloat32), dof = dout.to(torch::kFloat32);
  auto dq = torch::zeros(qf.sizes(), qf.options());
  auto dk = torch::zeros(kf.sizes(), kf.options());
  auto dv = torch::zeros(vf.sizes(), vf.options());
  for (size_t s = 0; s + 1 < cu.size(); ++s) {
    const int64_t a = cu[s], L = cu[s + 1] - cu[s];
    if (L == 0) continue;
    const auto qs = qf.narrow(0, a, L), ks = kf.narrow(0, a, L);
    const auto probs = torch::exp(sequence_scores(qs, ks, rep, causal, scale) -
                                  lse.narrow(1, a, L).unsqueeze(-1));               // (H, L, L)
    const auto doh = dof.narrow(0, a, L).transpose(0, 1);                          // (H, L, D)
    const auto oh = of.narrow(0, a, L).transpose(0, 1);
    const auto vh = vf.narrow(0, a, L).transpose(0, 1).repeat_interleave(rep, 0);
    const auto kh = ks.transpose(0, 1).repeat_interleave(rep, 0);
    const auto qh = qs.transpose(0, 1);
    const auto dv_h = torch::matmul(probs.transpose(1, 2), doh);                   // (H, L, D)
    const auto dp = torch::matmul(doh, vh.transpose(1, 2));                        // (H, L, L)
    const auto ds = probs * (dp - (doh * oh).sum(-1, /*keepdim=*/true));
    const auto dq_h = torch::matmul(ds, kh) * scale;
    const auto dk_h = torch::matmul(ds.transpose(1, 2), qh) * scale;
    dq.narrow(0, a, L).copy_(dq_h.transpose(0, 1));
    dk.narrow(0, a, L).copy_(dk_h.view({Hkv, rep, L, D}).sum(1).transpose(0, 1));
    dv.narrow(0, a, L).copy_(dv_h.view({Hkv, rep, L, D}).sum(1).transpose(0, 1));
  }
  return {dq.to(q.scalar_type()), dk.to(k.scalar_type()), dv.to(v.scalar_type())};
}

// ---- the CUDA kernels -------------------------------------------------------
#if defined(SYNTHPERT_HAVE_KERNELS)
namespace kn = synthpert::kernels;

kn::AttentionProblem kernel_problem(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& cu_seqlens,
                                    int64_t max_seqlen, bool causal, double scale) {
  kn::AttentionProblem p;
  p.dtype = kernel_dtype(q);
  p.head_dim = static_cast<int>(q.size(2));
  p.causal = causal;
  p.softmax_scale = static_cast<float>(scale);
  p.batch = static_cast<int>(cu_seqlens.numel() - 1);
  p.heads = static_cast<int>(q.size(1));
  p.kv_heads = static_cast<int>(k.size(1));
  p.total_tokens = q.size(0);
  p.max_seqlen = static_cast<int>(max_seqlen);
  SP_CHECK(cu_seqlens.device() == q.device() && cu_seqlens.is_contiguous(),
           "packed_attention: cu_seqlens must be contiguous on q's device");
  p.cu_seqlens = cu_seqlens.data_ptr<int32_t>();
  return p;
}
kn::HeadsView heads_view(const torch::Tensor& t) { return {t.data_ptr(), t.stride(0), t.stride(1)}; }
kn::MutableHeadsView mutable_view(torch::Tensor& t) { return {t.data_ptr(), t.stride(0), t.stride(1)}; }

AttentionResult forward_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& cu_seqlens, int64_t max_seqlen, bool causal, double scale) {
  use_kernel_device(q);
  const int64_t N = q.size(0), H = q.size(1);
  auto out = torch::empty(q.sizes(), q.options());
  auto lse = torch::empty({H, N}, q.options().dtype(torch::kFloat32));
  kn::AttentionForwardArgs a;
  a.problem = kernel_problem(q, k, cu_seqlens, max_seqlen, causal, scale);
  a.q = heads_view(q);
  a.k = heads_view(k);
  a.v = heads_view(v);
  a.out = mutable_view(out);
  a.lse_HN = lse.data_ptr<float>();
  kn::attention_forward(a, kernel_stream(q));
  return {out, lse};
}

AttentionGrads backward_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& out, const torch::Tensor& dout, const torch::Tensor& lse,
                               const torch::Tensor& cu_seqlens, int64_t max_seqlen, bool causal, double scale) {
  use_kernel_device(q);
  const int64_t N = q.size(0), H = q.size(1), D = q.size(2);
  auto dq = torch::empty(q.sizes(), q.options());
  auto dk = torch::empty(k.sizes(), k.options());
  auto dv = torch::empty(v.sizes(), v.options());
  const auto ws =
      kernel_workspace(q, kn::attention_backward_workspace_bytes(N, static_cast<int>(H), static_cast<int>(D)));
  kn::AttentionBackwardArgs a;
  a.problem = kernel_problem(q, k, cu_seqlens, max_seqlen, causal, scale);
  a.q = heads_view(q);
  a.k = heads_view(k);
  a.v = heads_view(v);
  a.out = heads_view(out);
  a.dout = heads_view(dout);
  a.lse_HN = lse.data_ptr<float>();
  a.dq = mutable_view(dq);
  a.dk = mutable_view(dk);
  a.dv = mutable_view(dv);
  a.workspace = ws.ptr;
  kn::attention_backward(a, kernel_stream(q));
  return {dq, dk, dv};
}
#endif

std::vector<int32_t> host_offsets(const torch::Tensor& cu_seqlens) {
  const auto c = cu_seqlens.to(torch::kCPU).to(torch::kInt32).contiguous();
  return std::vector<int32_t>(c.data_ptr<int32_t>(), c.data_ptr<int32_t>() + c.numel());
}

#if defined(SYNTHPERT_HAVE_KERNELS)
bool use_kernel(const torch::Tensor& q) {
  return packed_attention_kernel_supports(q.device(), q.scalar_type(), q.size(2));
}
#endif

struct PackedAttentionFunction : torch::autograd::Function<PackedAttentionFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in,
                               const torch::Tensor& cu_seqlens, int64_t max_seqlen, bool causal, double scale) {
    AttentionResult r;
    torch::Tensor q = q_in, k = k_in, v = v_in;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (use_kernel(q_in)) {
      q = kernel_heads(q_in), k = kernel_heads(k_in), v = kernel_heads(v_in);
      r = forward_kernel(q, k, v, cu_seqlens, max_seqlen, causal, scale);
    } else
#endif
    {
      r = forward_math(q, k, v, host_offsets(cu_seqlens), causal, scale);
    }
    ctx->save_for_backward({q, k, v, r.out_NHD, r.lse_HN, cu_seqlens});
    ctx->saved_data["max_seqlen"] = max_seqlen;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    return r.out_NHD;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4], &cu = saved[5];
    const int64_t max_seqlen = ctx->saved_data["max_seqlen"].toInt();
    const bool causal = ctx->saved_data["causal"].toBool();
    const double scale = ctx->saved_data["scale"].toDouble();
    AttentionGrads g;
#if defined(SYNTHPERT_HAVE_KERNELS)
    if (use_kernel(q)) {
      g = backward_kernel(q, k, v, out, kernel_heads(grads[0]), lse, cu, max_seqlen, causal, scale);
    } else
#endif
    {
      (void)max_seqlen;
      g = backward_math(q, k, v, out, grads[0], lse, host_offsets(cu), causal, scale);
    }
    return {g.dq, g.dk, g.dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor packed_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const PackedSequences& p, bool causal, double scale) {
  SP_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "packed_attention: q, k, v must be (N, heads, D)");
  SP_CHECK(q.size(0) == p.packed && k.size(0) == p.packed && v.size(0) == p.packed,
           "packed_attention: token count differs from the packing");
  SP_CHECK(k.sizes() == v.sizes() && q.size(2) == k.size(2), "packed_attention: k and v shapes differ from q's");
  SP_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "packed_attention: ", q.size(1),
           " query heads are not a multiple of ", k.size(1), " kv heads");
  if (p.packed == 0) return torch::zeros(q.sizes(), q.options());
  return PackedAttentionFunction::apply(q, k, v, p.cu_seqlens, p.max_seqlen, causal, scale);
}

}  // namespace synthpert::engine
