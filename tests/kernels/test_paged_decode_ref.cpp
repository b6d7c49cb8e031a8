// The paged decode and append references checked on CPU: the paged cache is
// gathered back into contiguous per-sequence K/V with libtorch indexing and
// attended to with libtorch fp64 matmul/softmax.
#include <ATen/ATen.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>
#include <random>
#include <vector>

#include "tests/reference/kernels/attention_ref.h"

using synthpert::reference::PagedCacheShape;

namespace {
std::vector<double> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}
at::Tensor as_tensor(const std::vector<double>& v, at::IntArrayRef shape) {
  return at::tensor(v, at::TensorOptions().dtype(at::kDouble)).reshape(shape);
}
}  // namespace

TEST_CASE("paged decode reference matches libtorch on a gathered cache", "[cpu][paged]") {
  PagedCacheShape s;
  s.batch = 4;
  s.heads = 6;
  s.kv_heads = 2;
  s.head_dim = 8;
  s.page_size = 4;
  s.max_pages_per_seq = 5;
  s.num_pages = 23;
  s.scale = 0.35;
  const std::vector<int32_t> seq_lens = {1, 17, 0, 20};  // partial last page, empty, full table
  // Pages handed out in a shuffled order so the table is not the identity.
  std::vector<int32_t> pages(s.num_pages);
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), std::mt19937(3));
  std::vector<int32_t> table(static_cast<size_t>(s.batch) * s.max_pages_per_seq, -1);
  size_t next = 0;
  for (int b = 0; b < s.batch; ++b)
    for (int p = 0; p * s.page_size < seq_lens[b]; ++p) table[b * s.max_pages_per_seq + p] = pages[next++];

  const size_t cache_n = static_cast<size_t>(s.num_pages) * s.page_size * s.kv_heads * s.head_dim;
  const auto k_cache = random_values(cache_n, 1), v_cache = random_values(cache_n, 2);
  const auto q = random_values(static_cast<size_t>(s.batch) * s.heads * s.head_dim, 3);
  const auto out = synthpert::reference::paged_decode_ref(s, q, k_cache, v_cache, table, seq_lens);

  const at::Tensor kc = as_tensor(k_cache, {s.num_pages * s.page_size, s.kv_heads, s.head_dim});
  const at::Tensor vc = as_tensor(v_cache, {s.num_pages * s.page_size, s.kv_heads, s.head_dim});
  const at::Tensor tq = as_tensor(q, {s.batch, s.heads, s.head_dim});
  const at::Tensor tout = as_tensor(out, {s.batch, s.heads, s.head_dim});
  for (int b = 0; b < s.batch; ++b) {
    if (seq_lens[b] == 0) {
      CHECK(tout[b].abs().max().item<double>() == 0.0);
      continue;
    }
    std::vector<int64_t> rows;
    for (int t = 0; t < seq_lens[b]; ++t)
      rows.push_back(int64_t{table[b * s.max_pages_per_seq + t / s.page_size]} * s.page_size + t % s.page_size);
    const at::Tensor idx = at::tensor(rows, at::kLong);
    const int rep = s.heads / s.kv_heads;
    const at::Tensor k = kc.index_select(0, idx).transpose(0, 1).repeat_interleave(rep, 0);  // (H, T, D)
    const at::Tensor v = vc.index_select(0, idx).transpose(0, 1).repeat_interleave(rep, 0);
    const at::Tensor scores = at::matmul(k, tq[b].unsqueeze(-1)).squeeze(-1) * s.scale;  // (H, T)
    const at::Tensor expect = at::matmul(at::softmax(scores, -1).unsqueeze(1), v).squeeze(1);  // (H, D)
    INFO("sequence " << b);
    CHECK((expect - tout[b]).abs().max().item<double>() < 1e-12);
  }
}

TEST_CASE("paged append reference writes each token into its page slot", "[cpu][paged]") {
  PagedCacheShape s;
  s.batch = 3;
  s.kv_heads = 2;
  s.heads = 2;
  s.head_dim = 3;
  s.page_size = 4;
  s.max_pages_per_seq = 2;
  s.num_pages = 6;
  const std::vector<int32_t> table = {5, 1, 0, 2, 3, 4};
  const std::vector<int32_t> positions = {6, -1, 0};  // page 1 slot 2; skipped; page 3 slot 0
  const size_t cache_n = static_cast<size_t>(s.num_pages) * s.page_size * s.kv_heads * s.head_dim;
  std::vector<double> kc(cache_n, 0.0), vc(cache_n, 0.0);
  const auto kn = random_values(s.batch * s.kv_heads * s.head_dim, 4);
  const auto vn = random_values(s.batch * s.kv_heads * s.head_dim, 5);
  synthpert::reference::paged_append_ref(s, kn, vn, table, positions, kc, vc);
  auto slot = [&](int page, int t, int hk, int d) { return ((page * s.page_size + t) * s.kv_heads + hk) * s.head_dim + d; };
  size_t written = 0;
  for (double x : kc) written += x != 0.0;
  CHECK(written == 2u * s.kv_heads * s.head_dim);
  for (int hk = 0; hk < s.kv_heads; ++hk)
    for (int d = 0; d < s.head_dim; ++d) {
      CHECK(kc[slot(1, 2, hk, d)] == kn[(0 * s.kv_heads + hk) * s.head_dim + d]);
      CHECK(vc[slot(1, 2, hk, d)] == vn[(0 * s.kv_heads + hk) * s.head_dim + d]);
      CHECK(kc[slot(3, 0, hk, d)] == kn[(2 * s.kv_heads + hk) * s.head_dim + d]);
      CHECK(vc[slot(3, 0, hk, d)] == vn[(2 * s.kv_heads + hk) * s.head_dim + d]);
    }
}
