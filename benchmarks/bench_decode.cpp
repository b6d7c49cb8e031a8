// bench_kernels section: paged decode attention (one query token per
// sequence over a paged bf16 KV cache) at Llama-3-8B's attention shape
// (32 query heads, 8 kv heads, head dim 128), against PyTorch's
// scaled_dot_product_attention with enable_gqa on the same K/V stored
// contiguously (benchmarks/peer_decode.py). Batch x context pairs from
// many short sequences to one long one (split-K). GB/s counts the K and V
// bytes each step must read once; the kernel reads each row once for the 4
// query heads of its GQA group (kernels/paged_decode.h).
#include <string>
#include <vector>

#include "benchmarks/bench_kernel_sections.h"
#include "kernels/paged_decode.h"

namespace synthpert::bench {
namespace {

constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16;

struct DecodeShape {
  int batch, context;
};
const std::vector<DecodeShape>& decode_shapes() {
  static const std::vector<DecodeShape> shapes = {{256, 1024}, {64, 2048}, {8, 4096}, {1, 16384}};
  return shapes;
}

std::string shape_key(const DecodeShape& s) { return "b" + std::to_string(s.batch) + "_t" + std::to_string(s.context); }

}  // namespace

SectionOutput bench_decode_section(const SectionContext& ctx) {
  std::string shapes_arg;
  for (const DecodeShape& s : decode_shapes())
    shapes_arg += (shapes_arg.empty() ? "" : ",") + std::to_string(s.batch) + "x" + std::to_string(s.context);
  const nlohmann::json peer = run_section_peer(ctx, "peer_decode.py", "--shapes " + shapes_arg);
  SectionOutput result = SectionOutput::titled("Paged decode attention");
  int device = 0, sm_count = 0;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  cuda_check(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device), "SM count");
  for (const DecodeShape& s : decode_shapes()) {
    const int pages_per_seq = (s.context + kPageSize - 1) / kPageSize;
    const int64_t pages = int64_t(s.batch) * pages_per_seq;
    const size_t cache_elems = size_t(pages) * kPageSize * kKvHeads * kHeadDim;
    DeviceMemory k_cache(cache_elems * 2), v_cache(cache_elems * 2), q(size_t(s.batch) * kHeads * kHeadDim * 2),
        out(size_t(s.batch) * kHeads * kHeadDim * 2), table(size_t(pages) * 4), lens(size_t(s.batch) * 4);
    fill_random_bf16(k_cache.get(), cache_elems, 41);
    fill_random_bf16(v_cache.get(), cache_elems, 42);
    fill_random_bf16(q.get(), size_t(s.batch) * kHeads * kHeadDim, 43);
    // Sequence b owns pages b * pages_per_seq onwards, in order.
    std::vector<int32_t> table_host(static_cast<size_t>(pages));
    std::vector<int32_t> lens_host(static_cast<size_t>(s.batch), s.context);
    for (int64_t i = 0; i < pages; ++i) table_host[size_t(i)] = int32_t(i);
    cuda_check(cudaMemcpy(table.get(), table_host.data(), table_host.size() * 4, cudaMemcpyHostToDevice), "table");
    cuda_check(cudaMemcpy(lens.get(), lens_host.data(), lens_host.size() * 4, cudaMemcpyHostToDevice), "seq_lens");

    kernels::PagedDecodeArgs a;
    a.cache.k_cache = k_cache.get();
    a.cache.v_cache = v_cache.get();
    a.cache.dtype = kernels::DType::kBF16;
    a.cache.num_pages = int(pages);
    a.cache.page_size = kPageSize;
    a.cache.kv_heads = kKvHeads;
    a.cache.head_dim = kHeadDim;
    a.cache.block_table = table.get<int32_t>();
    a.cache.max_pages_per_seq = pages_per_seq;
    a.batch = s.batch;
    a.heads = kHeads;
    a.softmax_scale = 0.08838834764f;  // 1 / sqrt(128)
    a.q = {q.get(), kHeads * kHeadDim, kHeadDim};
    a.out = {out.get(), kHeads * kHeadDim, kHeadDim};
    a.seq_lens = lens.get<int32_t>();
    a.max_seq_len = s.context;
    a.num_splits = kernels::paged_decode_choose_splits(s.batch, kHeads, kKvHeads, s.context, sm_count);
    DeviceMemory ws(kernels::paged_decode_workspace_bytes(s.batch, kHeads, kHeadDim, a.num_splits));
    a.workspace = ws.get();
    const double ms = median_ms(*ctx.timing, [&] { kernels::paged_decode(a, nullptr); });
    cuda_check(cudaDeviceSynchronize(), "paged_decode");

    const double bytes = 2.0 * double(s.batch) * s.context * kKvHeads * kHeadDim * 2;
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    const double peer_ms_value = peer_ms(peer, "ms", shape_key(s));
    const double peer_gbps = peer_ms_value > 0 ? bytes / (peer_ms_value * 1e-3) / 1e9 : -1;
    const std::string name = "paged decode b" + std::to_string(s.batch) + " ctx" + std::to_string(s.context) +
                             " h32/8 d128 (" + std::to_string(a.num_splits) + " splits)";
    result.add(result_row(name + " (of HBM peak)", "%", 100 * gbps * 1e9 / ctx.hbm_peak, -1, "", true));
    result.add(result_row(name, "GB/s", gbps, peer_gbps,
                          "torch scaled_dot_product_attention(enable_gqa=True) on contiguous K/V", true));
  }
  return result;
}

}  // namespace synthpert::bench
