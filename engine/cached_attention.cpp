#include "engine/cached_attention.h"

#include <limits>

#include "common/error.h"
#include "engine/kernel_launch.h"
#include "engine/packed_attention.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/attention.h"
#endif

namespace synthpert::engine {

CachedSequences cached_sequences(const std::vector<int64_t>& queries, const std::vector<int64_t>& keys,
                                 torch::Device device) {
  SP_CHECK(queries.size() == keys.size(), "cached_sequences: ", queries.size(), " query counts for ", keys.size(),
           " rows");
  CachedSequences r;
  r.cu_queries.push_back(0);
  for (size_t b = 0; b < queries.size(); ++b) {
    SP_CHECK(queries[b] >= 0 && queries[b] <= keys[b], "cached_sequences: row ", b, " has ", queries[b],
             " new tokens but ", keys[b], " filled slots");
    SP_CHECK(r.cu_queries.back() + queries[b] < std::numeric_limits<int32_t>::max() &&
                 keys[b] < std::numeric_limits<int32_t>::max(),
             "cached_sequences: too many tokens for int32 offsets");
    r.cu_queries.push_back(static_cast<int32_t>(r.cu_queries.back() + queries[b]));
    r.keys.push_back(static_cast<int32_t>(keys[b]));
    r.max_queries = std::max(r.max_queries, queries[b]);
  }
  r.cu_queries_device = torch::tensor(r.cu_queries, torch::kInt32).to(device);
  r.keys_device = torch::tensor(r.keys, torch::kInt32).to(device);
  return r;
}

namespace {

// Row by row in float32: scores (H, Lq, Lk) with key j hidden from query i
// when j > i + (Lk - Lq).
torch::Tensor cached_attention_math(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const CachedSequences& rows, double scale) {
  const int64_t H = q.size(1), rep = H / k.size(2);
  auto out = torch::zeros(q.sizes(), q.options().dtype(torch::kFloat32));
  for (size_t b = 0; b + 1 < rows.cu_queries.size(); ++b) {
    const int64_t first = rows.cu_queries[b], Lq = rows.cu_queries[b + 1] - first, Lk = rows.keys[b];
    if (Lq == 0) continue;
    const auto qh = q.narrow(0, first, Lq).to(torch::kFloat32).transpose(0, 1);  // (H, Lq, D)
    auto heads_first = [&](const torch::Tensor& t) {
      return t.select(0, static_cast<int64_t>(b))
          .narrow(0, 0, Lk)
          .to(torch::kFloat32)
          .transpose(0, 1)
          .repeat_interleave(rep, 0);  // (H, Lk, D): head h reads kv head h / rep
    };
    const auto kh = heads_first(k), vh = heads_first(v);
    const auto i = torch::arange(Lq, q.options().dtype(torch::kInt64)).unsqueeze(1);
    const auto j = torch::arange(Lk, q.options().dtype(torch::kInt64)).unsqueeze(0);
    const auto scores = (torch::matmul(qh, kh.transpose(1, 2)) * scale)
                            .masked_fill(j > i + (Lk - Lq), -std::numeric_limits<float>::infinity());
    out.narrow(0, first, Lq).copy_(torch::matmul(torch::softmax(scores, -1), vh).transpose(0, 1));
  }
  return out.to(q.scalar_type());
}

#if defined(SYNTHPERT_HAVE_KERNELS)
namespace kn = synthpert::kernels;

// The cache read in place: rows of S slots, k_BSKD's token and head strides,
// row b's keys from token b * (row stride / token stride) on. That holds for
// both layouts: token-major rows are S tokens of Hkv heads, head-major ones
// Hkv runs of S tokens, each token D elements after the last.
torch::Tensor cached_attention_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const CachedSequences& rows, double scale) {
  SP_CHECK(k.strides() == v.strides() && k.stride(3) == 1 && v.stride(3) == 1 && k.stride(0) % k.stride(1) == 0,
           "cached_attention: keys and values must share a cache layout with a contiguous head dim");
  use_kernel_device(q);
  const int64_t B = k.size(0), S = k.size(1), row_tokens = k.stride(0) / k.stride(1);
  SP_CHECK(B * row_tokens < std::numeric_limits<int32_t>::max(), "cached_attention: cache too large for int32 offsets");
  // Made on the device: every layer calls this, and a host tensor would be a
  // copy to the device per layer.
  const auto key_regions = torch::arange(0, (B + 1) * row_tokens, row_tokens, q.options().dtype(torch::kInt32));
  auto out = torch::empty(q.sizes(), q.options());
  auto lse = torch::empty({q.size(1), q.size(0)}, q.options().dtype(torch::kFloat32));
  kn::AttentionForwardArgs a;
  auto& p = a.problem;
  p.dtype = kernel_dtype(q);
  p.head_dim = static_cast<int>(q.size(2));
  p.causal = true;
  p.softmax_scale = static_cast<float>(scale);
  p.batch = static_cast<int>(B);
  p.heads = static_cast<int>(q.size(1));
  p.kv_heads = static_cast<int>(k.size(2));
  p.total_tokens = q.size(0);
  p.max_seqlen = static_cast<int>(rows.max_queries);
  p.cu_seqlens = rows.cu_queries_device.data_ptr<int32_t>();
  p.cu_seqlens_k = key_regions.data_ptr<int32_t>();
  p.seqused_k = rows.keys_device.data_ptr<int32_t>();
  p.total_keys = B == 0 ? 0 : (B - 1) * row_tokens + S;
  a.q = {q.data_ptr(), q.stride(0), q.stride(1)};
  a.k = {k.data_ptr(), k.stride(1), k.stride(2)};
  a.v = {v.data_ptr(), v.stride(1), v.stride(2)};
  a.out = {out.data_ptr(), out.stride(0), out.stride(1)};
  a.lse_HN = lse.data_ptr<float>();
  kn::attention_forward(a, kernel_stream(q));
  return out;
}
#endif

}  // namespace

torch::Tensor cached_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const CachedSequences& rows, double scale) {
  SP_CHECK(q.dim() == 3 && k.dim() == 4 && v.dim() == 4,
           "cached_attention: q must be (N, H, D), k and v (B, S, Hkv, D)");
  SP_CHECK(k.sizes() == v.sizes() && k.size(3) == q.size(2), "cached_attention: k and v shapes differ from q's");
  SP_CHECK(k.size(2) > 0 && q.size(1) % k.size(2) == 0, "cached_attention: ", q.size(1),
           " query heads are not a multiple of ", k.size(2), " kv heads");
  SP_CHECK(static_cast<int64_t>(rows.keys.size()) == k.size(0) && rows.cu_queries.back() == q.size(0),
           "cached_attention: the rows describe ", rows.keys.size(), " rows and ", rows.cu_queries.back(),
           " new tokens, the inputs hold ", k.size(0), " and ", q.size(0));
  for (size_t b = 0; b < rows.keys.size(); ++b)
    SP_CHECK(rows.keys[b] <= k.size(1), "cached_attention: row ", b, " has ", rows.keys[b], " keys in ", k.size(1),
             " slots");
  SP_CHECK(!q.requires_grad() && !k.requires_grad() && !v.requires_grad(),
           "cached_attention serves inference only (no gradient)");
#if defined(SYNTHPERT_HAVE_KERNELS)
  if (packed_attention_kernel_supports(q.device(), q.scalar_type(), q.size(2)) && q.scalar_type() == k.scalar_type() &&
      v.scalar_type() == k.scalar_type())
    return cached_attention_kernel(kernel_heads(q), k, v, rows, scale);
#endif
  return cached_attention_math(q, k, v, rows, scale);
}

}  // namespace synthpert::engine
