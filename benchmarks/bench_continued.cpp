// bench_kernels section: continued prefill, the attention forward with the
// keys held apart from the queries (kernels/attention.h: cu_seqlens_k,
// seqused_k), as engine/cached_attention.cpp runs it: each row's new tokens
// over its region of a token-major bf16 KV cache that already holds the row's
// earlier tokens (region capacity rounded up to 16-token pages, the unused
// slots never read). Llama-3-8B's attention shape (32 query heads, 8 kv
// heads, head dim 128), the kernel kAuto picks. Peer
// (benchmarks/peer_continued.py): PyTorch's flash attention op with its
// bottom-right causal alignment (what torch.nn.attention.bias's
// causal_lower_right dispatches to), GQA native, on contiguous
// [batch, heads, tokens, 128] tensors. TFLOP/s counts the visible
// (unmasked) query-key pairs: 4 * D flops each.
#include <string>
#include <vector>

#include "benchmarks/bench_kernel_sections.h"
#include "kernels/attention.h"

namespace synthpert::bench {
namespace {

constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16;

// Rows, tokens cached before, new tokens per row: prefill chunks of a long
// prompt; a batch of answers scored after a shared prefix; one long
// document continued.
struct ContinuedShape {
  int batch, cached, fresh;
};
const std::vector<ContinuedShape>& continued_shapes() {
  static const std::vector<ContinuedShape> shapes = {{8, 3584, 512}, {64, 448, 64}, {1, 14336, 2048}};
  return shapes;
}

std::string shape_key(const ContinuedShape& s) {
  return "b" + std::to_string(s.batch) + "_c" + std::to_string(s.cached) + "_n" + std::to_string(s.fresh);
}

}  // namespace

SectionOutput bench_continued_section(const SectionContext& ctx) {
  std::string shapes_arg;
  for (const ContinuedShape& s : continued_shapes())
    shapes_arg += (shapes_arg.empty() ? "" : ",") + std::to_string(s.batch) + "x" + std::to_string(s.cached) + "x" +
                  std::to_string(s.fresh);
  const nlohmann::json peer = run_section_peer(ctx, "peer_continued.py", "--shapes " + shapes_arg);
  SectionOutput result = SectionOutput::titled("Continued prefill attention (keys in a KV cache)");
  for (const ContinuedShape& s : continued_shapes()) {
    const int keys = s.cached + s.fresh;
    const int capacity = (keys + kPageSize - 1) / kPageSize * kPageSize;
    const int64_t queries = int64_t(s.batch) * s.fresh, slots = int64_t(s.batch) * capacity;
    DeviceMemory q(size_t(queries) * kHeads * kHeadDim * 2), out(size_t(queries) * kHeads * kHeadDim * 2),
        k(size_t(slots) * kKvHeads * kHeadDim * 2), v(size_t(slots) * kKvHeads * kHeadDim * 2),
        lse(size_t(queries) * kHeads * 4), cu_q(size_t(s.batch + 1) * 4), cu_k(size_t(s.batch + 1) * 4),
        used(size_t(s.batch) * 4);
    fill_random_bf16(q.get(), size_t(queries) * kHeads * kHeadDim, 51);
    fill_random_bf16(k.get(), size_t(slots) * kKvHeads * kHeadDim, 52);
    fill_random_bf16(v.get(), size_t(slots) * kKvHeads * kHeadDim, 53);
    std::vector<int32_t> cu_q_host, cu_k_host, used_host(size_t(s.batch), keys);
    for (int b = 0; b <= s.batch; ++b) {
      cu_q_host.push_back(b * s.fresh);
      cu_k_host.push_back(b * capacity);
    }
    cuda_check(cudaMemcpy(cu_q.get(), cu_q_host.data(), cu_q_host.size() * 4, cudaMemcpyHostToDevice), "cu_q");
    cuda_check(cudaMemcpy(cu_k.get(), cu_k_host.data(), cu_k_host.size() * 4, cudaMemcpyHostToDevice), "cu_k");
    cuda_check(cudaMemcpy(used.get(), used_host.data(), used_host.size() * 4, cudaMemcpyHostToDevice), "seqused_k");

    kernels::AttentionForwardArgs a;
    auto& p = a.problem;
    p.dtype = kernels::DType::kBF16;
    p.head_dim = kHeadDim;
    p.causal = true;
    p.softmax_scale = 0.08838834764f;  // 1 / sqrt(128)
    p.batch = s.batch;
    p.heads = kHeads;
    p.kv_heads = kKvHeads;
    p.total_tokens = queries;
    p.max_seqlen = s.fresh;
    p.cu_seqlens = cu_q.get<int32_t>();
    p.cu_seqlens_k = cu_k.get<int32_t>();
    p.seqused_k = used.get<int32_t>();
    p.total_keys = slots;
    a.q = {q.get(), kHeads * kHeadDim, kHeadDim};
    a.k = {k.get(), kKvHeads * kHeadDim, kHeadDim};
    a.v = {v.get(), kKvHeads * kHeadDim, kHeadDim};
    a.out = {out.get(), kHeads * kHeadDim, kHeadDim};
    a.lse_HN = lse.get<float>();
    const kernels::AttentionForwardChoice choice = kernels::attention_forward_choice(a);
    const double ms = median_ms(*ctx.timing, [&] { kernels::attention_forward(a, nullptr); });
    cuda_check(cudaDeviceSynchronize(), "attention_forward");

    // Query i of a row sees cached + i + 1 keys.
    const double pairs = double(s.batch) * kHeads * (double(s.fresh) * s.cached + double(s.fresh) * (s.fresh + 1) / 2);
    const double flops = 4.0 * kHeadDim * pairs;
    const double tflops = flops / (ms * 1e-3) / 1e12;
    const double peer_ms_value = peer_ms(peer, "ms", shape_key(s));
    const double peer_tflops = peer_ms_value > 0 ? flops / (peer_ms_value * 1e-3) / 1e12 : -1;
    const std::string kernel = choice.path == kernels::AttentionPath::kWgmma
                                   ? "wgmma x" + std::to_string(choice.wgmma_warpgroups)
                                   : std::string("mma.sync");
    const std::string name = "continued b" + std::to_string(s.batch) + " cached" + std::to_string(s.cached) + " new" +
                             std::to_string(s.fresh) + " h32/8 d128 (" + kernel + ")";
    const std::string peer_name = peer.contains("op") ? peer["op"].get<std::string>() : std::string("torch flash");
    result.add(result_row(name, "TFLOP/s", tflops, peer_tflops, peer_name, true));
  }
  return result;
}

}  // namespace synthpert::bench
