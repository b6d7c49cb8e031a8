#include "engine/paged_decode.h"

#include <cstdint>
#include <limits>

#include "common/error.h"
#include "engine/kernel_launch.h"

#if defined(SYNTHPERT_HAVE_KERNELS)
#include "kernels/paged_decode.h"
#endif

namespace synthpert::engine {

bool paged_decode_kernel_supports(torch::Device device, torch::ScalarType dtype, int64_t head_dim) {
  return kernels_apply(device, dtype) && (head_dim == 64 || head_dim == 128);
}

namespace {

// Row b attends to slots [0, seq_lens[b]) of its part of the cache, in float32.
torch::Tensor paged_decode_torch(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                                 const PagedDecodeInputs& in, double scale) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2), Hkv = k_cache.size(2), rep = H / Hkv;
  const int64_t S = in.max_seq_len;
  if (S == 0) return torch::zeros_like(q);
  const auto k = k_cache.narrow(1, 0, S).to(torch::kFloat32).permute({0, 2, 3, 1});  // (B, Hkv, D, S)
  const auto v = v_cache.narrow(1, 0, S).to(torch::kFloat32).transpose(1, 2);        // (B, Hkv, S, D)
  const auto qg = q.to(torch::kFloat32).reshape({B, Hkv, rep, D});
  auto scores = torch::matmul(qg, k) * scale;  // (B, Hkv, rep, S)
  const auto lens = in.seq_lens.to(torch::kInt64).view({B, 1, 1, 1});
  const auto outside = torch::arange(S, lens.options()).view({1, 1, 1, S}) >= lens;
  scores.masked_fill_(outside, -std::numeric_limits<float>::infinity());
  // A row with no token: every score is -inf; zeros, as the kernel gives.
  const auto probs = torch::softmax(scores, -1).nan_to_num(0.0);
  return torch::matmul(probs, v).reshape({B, H, D}).to(q.scalar_type());
}

}  // namespace

torch::Tensor paged_decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache,
                                     const torch::Tensor& v_cache, const PagedDecodeInputs& in, double scale) {
  SP_CHECK(q.dim() == 3 && k_cache.dim() == 4 && v_cache.sizes() == k_cache.sizes(),
           "paged_decode_attention: q must be (B, H, D) and the caches (B, C, Hkv, D)");
  SP_CHECK(q.size(0) == k_cache.size(0) && q.size(2) == k_cache.size(3) && q.size(1) % k_cache.size(2) == 0,
           "paged_decode_attention: q ", q.sizes(), " does not fit the cache ", k_cache.sizes());
  SP_CHECK(k_cache.size(1) % in.page_size == 0 && in.max_seq_len <= k_cache.size(1),
           "paged_decode_attention: capacity ", k_cache.size(1), " is not whole pages of ", in.page_size,
           " or is below max_seq_len ", in.max_seq_len);
#if defined(SYNTHPERT_HAVE_KERNELS)
  if (paged_decode_kernel_supports(q.device(), q.scalar_type(), q.size(2))) {
    namespace kn = synthpert::kernels;
    SP_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(),
             "paged_decode_attention: the caches must be contiguous");
    // The kernel reads q, the caches and out as one type, and its index
    // arrays on the device.
    SP_CHECK(k_cache.scalar_type() == q.scalar_type() && v_cache.scalar_type() == q.scalar_type(),
             "paged_decode_attention: the caches must have q's dtype");
    SP_CHECK(
        in.block_table.device() == q.device() && in.seq_lens.device() == q.device() && in.block_table.is_contiguous() &&
            in.seq_lens.is_contiguous() &&
            in.block_table.numel() == k_cache.size(0) * (k_cache.size(1) / in.page_size) &&
            in.seq_lens.numel() == k_cache.size(0),
        "paged_decode_attention: block_table (B, C / page_size) and seq_lens (B) must be contiguous on q's device");
    use_kernel_device(q);
    const int64_t B = q.size(0), H = q.size(1), D = q.size(2), C = k_cache.size(1);
    auto out = torch::empty({B, H, D}, q.options());
    kn::PagedDecodeArgs a;
    a.cache.k_cache = k_cache.data_ptr();
    a.cache.v_cache = v_cache.data_ptr();
    a.cache.dtype = kernel_dtype(q);
    a.cache.num_pages = static_cast<int>(B * C / in.page_size);
    a.cache.page_size = static_cast<int>(in.page_size);
    a.cache.kv_heads = static_cast<int>(k_cache.size(2));
    a.cache.head_dim = static_cast<int>(D);
    a.cache.block_table = in.block_table.data_ptr<int32_t>();
    a.cache.max_pages_per_seq = static_cast<int>(C / in.page_size);
    a.batch = static_cast<int>(B);
    a.heads = static_cast<int>(H);
    a.softmax_scale = static_cast<float>(scale);
    const auto qv = kernel_heads(q);
    a.q = {qv.data_ptr(), qv.stride(0), qv.stride(1)};
    a.out = {out.data_ptr(), H * D, D};
    a.seq_lens = in.seq_lens.data_ptr<int32_t>();
    a.max_seq_len = static_cast<int>(in.max_seq_len);
    a.num_splits = kn::paged_decode_choose_splits(a.batch, a.heads, a.cache.kv_heads, a.max_seq_len, kernel_sm_count(q));
    KernelWorkspace ws;
    if (a.num_splits > 1) {
      ws = kernel_workspace(q, kn::paged_decode_workspace_bytes(a.batch, a.heads, a.cache.head_dim, a.num_splits));
      a.workspace = ws.ptr;
    }
    kn::paged_decode(a, kernel_stream(q));
    return out;
  }
#endif
  return paged_decode_torch(q, k_cache, v_cache, in, scale);
}

}  // namespace synthpert::engine
