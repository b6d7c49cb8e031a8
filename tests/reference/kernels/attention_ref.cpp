// Readable CPU references for attention; see attention_ref.h for layouts.
#include "tests/reference/kernels/attention_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace synthpert::reference {
namespace {

// Index helpers for the contiguous layouts of the legend.
inline size_t at_nhd(int64_t n, int h, int d, int heads, int dim) {
  return (static_cast<size_t>(n) * heads + h) * dim + d;
}

double dot(const double* a, const double* b, int n) {
  double acc = 0.0;
  for (int i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// Scaled scores of query token i (absolute index) against the visible keys of
// its sequence [begin, end_visible); returns the softmax probabilities.
std::vector<double> softmax_row(const AttentionShape& s, const std::vector<double>& q,
                                const std::vector<double>& k, int64_t i, int h, int64_t begin,
                                int64_t end_visible) {
  const int D = s.head_dim;
  const int hk = h / (s.heads / s.kv_heads);
  std::vector<double> p(static_cast<size_t>(end_visible - begin));
  double max_score = -std::numeric_limits<double>::infinity();
  for (int64_t j = begin; j < end_visible; ++j) {
    const double score = s.scale * dot(&q[at_nhd(i, h, 0, s.heads, D)], &k[at_nhd(j, hk, 0, s.kv_heads, D)], D);
    p[j - begin] = score;
    max_score = std::max(max_score, score);
  }
  double sum = 0.0;
  for (double& x : p) {
    x = std::exp(x - max_score);
    sum += x;
  }
  for (double& x : p) x /= sum;
  return p;
}

}  // namespace

void check_attention_shape(const AttentionShape& s, size_t q_size, size_t kv_size) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("attention reference: " + m); };
  if (s.heads <= 0 || s.kv_heads <= 0 || s.head_dim <= 0) fail("heads, kv_heads and head_dim must be positive");
  if (s.heads % s.kv_heads != 0) fail("heads must be a multiple of kv_heads");
  if (s.cu_seqlens.empty() || s.cu_seqlens.front() != 0) fail("cu_seqlens must start with 0");
  for (size_t b = 1; b < s.cu_seqlens.size(); ++b)
    if (s.cu_seqlens[b] < s.cu_seqlens[b - 1]) fail("cu_seqlens must be non-decreasing");
  const size_t n = static_cast<size_t>(s.tokens());
  if (q_size != n * s.heads * s.head_dim) fail("q must hold N*H*D values");
  if (kv_size != n * s.kv_heads * s.head_dim) fail("k and v must hold N*Hkv*D values");
}

AttentionForward attention_forward_ref(const AttentionShape& s, const std::vector<double>& q,
                                       const std::vector<double>& k, const std::vector<double>& v) {
  check_attention_shape(s, q.size(), k.size());
  if (v.size() != k.size()) throw std::invalid_argument("attention reference: v must match k");
  const int H = s.heads, Hkv = s.kv_heads, D = s.head_dim;
  const int64_t N = s.tokens();
  AttentionForward r;
  r.out_NHD.assign(q.size(), 0.0);
  r.lse_HN.assign(static_cast<size_t>(H) * N, 0.0);
  for (size_t b = 0; b + 1 < s.cu_seqlens.size(); ++b) {
    const int64_t begin = s.cu_seqlens[b], end = s.cu_seqlens[b + 1];
    for (int64_t i = begin; i < end; ++i) {
      const int64_t end_visible = s.causal ? i + 1 : end;
      for (int h = 0; h < H; ++h) {
        const int hk = h / (H / Hkv);
        // LSE from the raw scores, computed separately from the probabilities.
        double max_score = -std::numeric_limits<double>::infinity();
        std::vector<double> scores;
        for (int64_t j = begin; j < end_visible; ++j) {
          scores.push_back(s.scale * dot(&q[at_nhd(i, h, 0, H, D)], &k[at_nhd(j, hk, 0, Hkv, D)], D));
          max_score = std::max(max_score, scores.back());
        }
        double sum = 0.0;
        for (double x : scores) sum += std::exp(x - max_score);
        r.lse_HN[static_cast<size_t>(h) * N + i] = max_score + std::log(sum);
        for (size_t jj = 0; jj < scores.size(); ++jj) {
          const double p = std::exp(scores[jj] - max_score) / sum;
          for (int d = 0; d < D; ++d)
            r.out_NHD[at_nhd(i, h, d, H, D)] += p * v[at_nhd(begin + jj, hk, d, Hkv, D)];
        }
      }
    }
  }
  return r;
}

AttentionGrads attention_backward_ref(const AttentionShape& s, const std::vector<double>& q,
                                      const std::vector<double>& k, const std::vector<double>& v,
                                      const std::vector<double>& dout) {
  check_attention_shape(s, q.size(), k.size());
  if (v.size() != k.size() || dout.size() != q.size())
    throw std::invalid_argument("attention reference: v must match k and dout must match q");
  const int H = s.heads, Hkv = s.kv_heads, D = s.head_dim;
  AttentionGrads g;
  g.dq_NHD.assign(q.size(), 0.0);
  g.dk_NHD.assign(k.size(), 0.0);
  g.dv_NHD.assign(v.size(), 0.0);
  for (size_t b = 0; b + 1 < s.cu_seqlens.size(); ++b) {
    const int64_t begin = s.cu_seqlens[b], end = s.cu_seqlens[b + 1];
    for (int64_t i = begin; i < end; ++i) {
      const int64_t end_visible = s.causal ? i + 1 : end;
      for (int h = 0; h < H; ++h) {
        const int hk = h / (H / Hkv);
        const std::vector<double> p = softmax_row(s, q, k, i, h, begin, end_visible);
        const double* do_i = &dout[at_nhd(i, h, 0, H, D)];
        // out_i = sum_j p_j v_j, so d out_i / d p_j = v_j and dP_j = dout_i . v_j.
        // Softmax Jacobian: dS_j = p_j (dP_j - sum_l p_l dP_l).
        std::vector<double> dp(p.size());
        double weighted = 0.0;
        for (size_t jj = 0; jj < p.size(); ++jj) {
          dp[jj] = dot(do_i, &v[at_nhd(begin + jj, hk, 0, Hkv, D)], D);
          weighted += p[jj] * dp[jj];
        }
        for (size_t jj = 0; jj < p.size(); ++jj) {
          const int64_t j = begin + static_cast<int64_t>(jj);
          const double ds = p[jj] * (dp[jj] - weighted) * s.scale;
          for (int d = 0; d < D; ++d) {
            g.dv_NHD[at_nhd(j, hk, d, Hkv, D)] += p[jj] * do_i[d];
            g.dq_NHD[at_nhd(i, h, d, H, D)] += ds * k[at_nhd(j, hk, d, Hkv, D)];
            g.dk_NHD[at_nhd(j, hk, d, Hkv, D)] += ds * q[at_nhd(i, h, d, H, D)];
          }
        }
      }
    }
  }
  return g;
}

namespace {
void check_paged_shape(const PagedCacheShape& s, size_t cache_size, size_t table_size, size_t lens_size) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("paged reference: " + m); };
  if (s.heads <= 0 || s.kv_heads <= 0 || s.heads % s.kv_heads != 0) fail("heads must be a positive multiple of kv_heads");
  if (s.page_size <= 0 || s.head_dim <= 0) fail("page_size and head_dim must be positive");
  if (cache_size != static_cast<size_t>(s.num_pages) * s.page_size * s.kv_heads * s.head_dim)
    fail("cache must hold num_pages*page_size*Hkv*D values");
  if (table_size != static_cast<size_t>(s.batch) * s.max_pages_per_seq) fail("block table must be [B, max_pages_per_seq]");
  if (lens_size != static_cast<size_t>(s.batch)) fail("seq_lens/positions must have B entries");
}

inline size_t cache_index(const PagedCacheShape& s, const std::vector<int32_t>& table, int b, int64_t t, int hk) {
  const int32_t page = table[static_cast<size_t>(b) * s.max_pages_per_seq + t / s.page_size];
  if (page < 0 || page >= s.num_pages) throw std::invalid_argument("paged reference: block table entry out of range");
  return ((static_cast<size_t>(page) * s.page_size + t % s.page_size) * s.kv_heads + hk) * s.head_dim;
}
}  // namespace

std::vector<double> paged_decode_ref(const PagedCacheShape& s, const std::vector<double>& q,
                                     const std::vector<double>& k_cache, const std::vector<double>& v_cache,
                                     const std::vector<int32_t>& table, const std::vector<int32_t>& seq_lens) {
  check_paged_shape(s, k_cache.size(), table.size(), seq_lens.size());
  const int H = s.heads, D = s.head_dim;
  std::vector<double> out(static_cast<size_t>(s.batch) * H * D, 0.0);
  for (int b = 0; b < s.batch; ++b) {
    const int64_t len = seq_lens[b];
    if (len > static_cast<int64_t>(s.max_pages_per_seq) * s.page_size)
      throw std::invalid_argument("paged reference: seq_len exceeds the block table");
    for (int h = 0; h < H; ++h) {
      if (len == 0) continue;
      const int hk = h / (H / s.kv_heads);
      const double* qv = &q[(static_cast<size_t>(b) * H + h) * D];
      std::vector<double> scores(static_cast<size_t>(len));
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t t = 0; t < len; ++t) {
        scores[t] = s.scale * dot(qv, &k_cache[cache_index(s, table, b, t, hk)], D);
        max_score = std::max(max_score, scores[t]);
      }
      double sum = 0.0;
      for (double& x : scores) {
        x = std::exp(x - max_score);
        sum += x;
      }
      for (int64_t t = 0; t < len; ++t) {
        const double* vv = &v_cache[cache_index(s, table, b, t, hk)];
        for (int d = 0; d < D; ++d) out[(static_cast<size_t>(b) * H + h) * D + d] += scores[t] / sum * vv[d];
      }
    }
  }
  return out;
}

void paged_append_ref(const PagedCacheShape& s, const std::vector<double>& k_new,
                      const std::vector<double>& v_new, const std::vector<int32_t>& table,
                      const std::vector<int32_t>& positions, std::vector<double>& k_cache,
                      std::vector<double>& v_cache) {
  check_paged_shape(s, k_cache.size(), table.size(), positions.size());
  const int D = s.head_dim;
  for (int b = 0; b < s.batch; ++b) {
    if (positions[b] < 0) continue;
    if (positions[b] >= s.max_pages_per_seq * s.page_size)
      throw std::invalid_argument("paged reference: position exceeds the block table");
    for (int hk = 0; hk < s.kv_heads; ++hk) {
      const size_t dst = cache_index(s, table, b, positions[b], hk);
      const size_t src = (static_cast<size_t>(b) * s.kv_heads + hk) * D;
      for (int d = 0; d < D; ++d) {
        k_cache[dst + d] = k_new[src + d];
        v_cache[dst + d] = v_new[src + d];
      }
    }
  }
}

}  // namespace synthpert::reference
