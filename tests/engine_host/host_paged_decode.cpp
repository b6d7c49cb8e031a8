// kernels/paged_decode.h's decode launcher emulated on host memory with the
// fp64 reference of tests/reference/kernels (see host_attention.cpp for
// why). It reads the cache as pages through the block table, q and out
// through their views, and requires the workspace the launcher requires.
#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "kernels/paged_decode.h"
#include "tests/engine_host/host_memory.h"
#include "tests/reference/kernels/attention_ref.h"

namespace synthpert::kernels {

size_t paged_decode_workspace_bytes(int batch, int heads, int head_dim, int num_splits) {
  return static_cast<size_t>(batch) * heads * num_splits * (head_dim + 2) * sizeof(float);
}

// A chunk per 16 tokens (at most 4), so short test rows reach split-K.
int paged_decode_choose_splits(int, int, int, int max_seq_len, int) { return std::clamp((max_seq_len + 15) / 16, 1, 4); }

void paged_decode(const PagedDecodeArgs& a, cudaStream_t) {
  const PagedKVCache& c = a.cache;
  if (a.num_splits > 1 && (a.workspace == nullptr || reinterpret_cast<uintptr_t>(a.workspace) % 256 != 0))
    throw std::invalid_argument("host paged_decode: split-K needs a 256-byte aligned workspace");
  reference::PagedCacheShape s;
  s.batch = a.batch;
  s.heads = a.heads;
  s.kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.page_size = c.page_size;
  s.num_pages = c.num_pages;
  s.max_pages_per_seq = c.max_pages_per_seq;
  s.scale = a.softmax_scale;
  const int64_t cache_elems = int64_t(c.num_pages) * c.page_size * c.kv_heads * c.head_dim;
  std::vector<double> k(static_cast<size_t>(cache_elems)), v(k.size());
  for (int64_t i = 0; i < cache_elems; ++i) {
    k[i] = host_emulation::load(c.k_cache, i, c.dtype);
    v[i] = host_emulation::load(c.v_cache, i, c.dtype);
  }
  const auto q = host_emulation::gather_heads(a.q.data, a.q.token_stride, a.q.head_stride, a.batch, a.heads,
                                             c.head_dim, c.dtype);
  const std::vector<int32_t> table(c.block_table, c.block_table + size_t(a.batch) * c.max_pages_per_seq);
  const std::vector<int32_t> lens(a.seq_lens, a.seq_lens + a.batch);
  for (int32_t len : lens)
    if (len > a.max_seq_len) throw std::invalid_argument("host paged_decode: a seq_len exceeds max_seq_len");
  const auto out = reference::paged_decode_ref(s, q, k, v, table, lens);
  host_emulation::scatter_heads(out, a.out.data, a.out.token_stride, a.out.head_stride, a.batch, a.heads, c.head_dim,
                                c.dtype);
}

}  // namespace synthpert::kernels
