// Paged decode attention (split-K) and paged K/V append; see paged_decode.h.
//
// Decode is bandwidth-bound (each cached K/V byte is read once per step), so
// it uses CUDA cores, not tensor cores: one thread block per (group of query
// heads sharing a kv head, sequence, split), so that a K/V row is loaded once
// for up to 8 heads of a GQA group (paged_decode_heads_per_block); its 4
// warps take turns on groups of 4 tokens, each lane holding D/32 contiguous
// channels. Each warp keeps an online-softmax state per head; the block
// merges its warps in shared memory, and with split-K a reduce kernel merges
// the splits. Scores are kept in log2 units (q pre-multiplied by
// scale * log2 e) so every exponential is one exp2f.
#include "kernels/paged_decode.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

namespace synthpert::kernels {
namespace {

constexpr int kDecodeWarps = 4;
constexpr int kKeysPerStep = 4;  // keys a warp has in flight at once (memory-level parallelism)
constexpr float kLog2e = 1.4426950408889634f;

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

// Workspace: m [B, H, splits], l [B, H, splits], acc [B, H, splits, D] (fp32).
struct SplitWorkspace {
  float* m;
  float* l;
  float* acc;
};
SplitWorkspace split_workspace(void* base, int batch, int heads, int num_splits) {
  const size_t n = size_t(batch) * heads * num_splits;
  char* p = static_cast<char*>(base);
  return {reinterpret_cast<float*>(p), reinterpret_cast<float*>(p + align256(n * sizeof(float))),
          reinterpret_cast<float*>(p + 2 * align256(n * sizeof(float)))};
}

// A lane's kPerLane contiguous channels in one 4- or 8-byte load (the
// launcher checks the alignment this needs).
template <typename T, int kPerLane>
__device__ __forceinline__ void load_lane(const T* src, float (&dst)[kPerLane]) {
  static_assert(kPerLane == 2 || kPerLane == 4, "D must be 64 or 128");
  using Word = std::conditional_t<kPerLane == 2, uint32_t, uint2>;
  const Word raw = *reinterpret_cast<const Word*>(src);
  const T* e = reinterpret_cast<const T*>(&raw);
  for (int i = 0; i < kPerLane; ++i) dst[i] = to_float(e[i]);
}

__device__ __forceinline__ float warp_sum(float x) {
  for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

template <typename T, int D, int kHeads>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    paged_decode_kernel(PagedDecodeArgs args, int tokens_per_split, SplitWorkspace ws) {
  constexpr int kPerLane = D / 32;
  // kHeads consecutive query heads, all reading one kv head (kHeads divides
  // the GQA group): each K/V row is loaded once for all of them. Head groups
  // vary fastest in launch order, so the groups of one kv head (when the GQA
  // group is larger than kHeads) run together and share rows through L2.
  const int h0 = blockIdx.x * kHeads, b = blockIdx.y, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const PagedKVCache& c = args.cache;
  const int hk = h0 / (args.heads / c.kv_heads);
  const int seq_len = args.seq_lens[b];
  const int t_begin = split * tokens_per_split;
  const int t_end = min(seq_len, t_begin + tokens_per_split);

  const float q_scale = args.softmax_scale * kLog2e;
  float q[kHeads][kPerLane];
  for (int hh = 0; hh < kHeads; ++hh) {
    load_lane<T, kPerLane>(static_cast<const T*>(args.q.data) + int64_t(b) * args.q.token_stride +
                               int64_t(h0 + hh) * args.q.head_stride + lane * kPerLane,
                           q[hh]);
    for (int i = 0; i < kPerLane; ++i) q[hh][i] *= q_scale;
  }

  const T* k_cache = static_cast<const T*>(c.k_cache);
  const T* v_cache = static_cast<const T*>(c.v_cache);
  const int32_t* table = c.block_table + int64_t(b) * c.max_pages_per_seq;
  auto row_offset = [&](int t) {
    const int64_t page = table[t / c.page_size];
    return ((page * c.page_size + t % c.page_size) * c.kv_heads + hk) * D + lane * kPerLane;
  };

  float m[kHeads], l[kHeads], acc[kHeads][kPerLane] = {};
  for (int hh = 0; hh < kHeads; ++hh) {
    m[hh] = -INFINITY;
    l[hh] = 0.f;
  }
  for (int t0 = t_begin + warp * kKeysPerStep; t0 < t_end; t0 += kDecodeWarps * kKeysPerStep) {
    int64_t off[kKeysPerStep];
    float kv[kKeysPerStep][kPerLane];
    for (int j = 0; j < kKeysPerStep; ++j) {
      const int t = t0 + j;
      off[j] = t < t_end ? row_offset(t) : -1;
      for (int i = 0; i < kPerLane; ++i) kv[j][i] = 0.f;
      if (off[j] >= 0) load_lane<T, kPerLane>(k_cache + off[j], kv[j]);
    }
    float p[kHeads][kKeysPerStep];
    for (int hh = 0; hh < kHeads; ++hh) {
      float m_new = m[hh];
      for (int j = 0; j < kKeysPerStep; ++j) {
        float dot = 0.f;
        for (int i = 0; i < kPerLane; ++i) dot += q[hh][i] * kv[j][i];
        p[hh][j] = off[j] >= 0 ? warp_sum(dot) : -INFINITY;
        m_new = fmaxf(m_new, p[hh][j]);
      }
      // t0 < t_end, so key t0 is valid and m_new is finite here.
      const float rescale = exp2f(m[hh] - m_new);
      l[hh] *= rescale;
      for (int i = 0; i < kPerLane; ++i) acc[hh][i] *= rescale;
      for (int j = 0; j < kKeysPerStep; ++j) {
        p[hh][j] = exp2f(p[hh][j] - m_new);  // 0 for the keys past t_end
        l[hh] += p[hh][j];
      }
      m[hh] = m_new;
    }
    for (int j = 0; j < kKeysPerStep; ++j) {
      if (off[j] < 0) continue;
      float vv[kPerLane];
      load_lane<T, kPerLane>(v_cache + off[j], vv);
      for (int hh = 0; hh < kHeads; ++hh)
        for (int i = 0; i < kPerLane; ++i) acc[hh][i] += p[hh][j] * vv[i];
    }
  }

  // Merge the warps' states per head: M = max m_w, L = sum l_w 2^(m_w - M),
  // O likewise.
  __shared__ float s_m[kDecodeWarps][kHeads], s_l[kDecodeWarps][kHeads];
  __shared__ float s_acc[kDecodeWarps][kHeads][D];
  for (int hh = 0; hh < kHeads; ++hh) {
    if (lane == 0) {
      s_m[warp][hh] = m[hh];
      s_l[warp][hh] = l[hh];
    }
    for (int i = 0; i < kPerLane; ++i) s_acc[warp][hh][lane * kPerLane + i] = acc[hh][i];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kHeads * D; e += blockDim.x) {
    const int hh = e / D, d = e % D, h = h0 + hh;
    float block_m = -INFINITY;
    for (int w = 0; w < kDecodeWarps; ++w) block_m = fmaxf(block_m, s_m[w][hh]);
    float block_l = 0.f, o = 0.f;
    for (int w = 0; w < kDecodeWarps; ++w) {
      const float weight = block_m == -INFINITY ? 0.f : exp2f(s_m[w][hh] - block_m);
      block_l += s_l[w][hh] * weight;
      o += s_acc[w][hh][d] * weight;
    }
    const int64_t row = int64_t(b) * args.heads + h;
    if (args.num_splits == 1) {
      T* out = static_cast<T*>(args.out.data) + int64_t(b) * args.out.token_stride + int64_t(h) * args.out.head_stride;
      out[d] = from_float<T>(block_l > 0.f ? o / block_l : 0.f);
    } else {
      ws.acc[(row * args.num_splits + split) * D + d] = o;
      if (d == 0) {
        ws.m[row * args.num_splits + split] = block_m;
        ws.l[row * args.num_splits + split] = block_l;
      }
    }
  }
}

template <typename T, int D>
__global__ void paged_decode_reduce_kernel(PagedDecodeArgs args, SplitWorkspace ws) {
  const int b = blockIdx.x, h = blockIdx.y;
  const int64_t row = int64_t(b) * args.heads + h;
  const float* m = ws.m + row * args.num_splits;
  const float* l = ws.l + row * args.num_splits;
  float m_all = -INFINITY;
  for (int s = 0; s < args.num_splits; ++s) m_all = fmaxf(m_all, m[s]);
  float l_all = 0.f;
  for (int s = 0; s < args.num_splits; ++s) l_all += m_all == -INFINITY ? 0.f : l[s] * exp2f(m[s] - m_all);
  T* out = static_cast<T*>(args.out.data) + int64_t(b) * args.out.token_stride + int64_t(h) * args.out.head_stride;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < args.num_splits; ++s)
      if (m[s] != -INFINITY) o += ws.acc[(row * args.num_splits + s) * D + d] * exp2f(m[s] - m_all);
    out[d] = from_float<T>(l_all > 0.f ? o / l_all : 0.f);
  }
}

template <typename T>
__global__ void paged_append_kernel(PagedAppendArgs args) {
  const int b = blockIdx.x, hk = blockIdx.y;
  const PagedKVCache& c = args.cache;
  const int pos = args.positions[b];
  if (pos < 0) return;
  const int64_t page = c.block_table[int64_t(b) * c.max_pages_per_seq + pos / c.page_size];
  const int64_t dst = ((page * c.page_size + pos % c.page_size) * c.kv_heads + hk) * c.head_dim;
  const T* k = static_cast<const T*>(args.k_new.data) + int64_t(b) * args.k_new.token_stride + int64_t(hk) * args.k_new.head_stride;
  const T* v = static_cast<const T*>(args.v_new.data) + int64_t(b) * args.v_new.token_stride + int64_t(hk) * args.v_new.head_stride;
  for (int d = threadIdx.x; d < c.head_dim; d += blockDim.x) {
    static_cast<T*>(c.k_cache)[dst + d] = k[d];
    static_cast<T*>(c.v_cache)[dst + d] = v[d];
  }
}

void check_cache(const PagedKVCache& c, const char* op) {
  SPK_REQUIRE(c.dtype == DType::kBF16 || c.dtype == DType::kF16, op,
              std::string("cache dtype must be bf16 or f16, got ") + dtype_name(c.dtype));
  SPK_REQUIRE(c.k_cache != nullptr && c.v_cache != nullptr, op, "k_cache and v_cache must not be null");
  SPK_REQUIRE(c.num_pages > 0 && c.page_size > 0, op, "num_pages and page_size must be > 0");
  SPK_REQUIRE(c.kv_heads > 0 && c.head_dim > 0, op, "kv_heads and head_dim must be > 0");
  SPK_REQUIRE(c.block_table != nullptr && c.max_pages_per_seq > 0, op,
              "block_table must be a device [batch, max_pages_per_seq] int32 array with max_pages_per_seq > 0");
}

void check_heads_view(const void* data, int64_t token_stride, int64_t head_stride, int per_lane, const char* op,
                      const std::string& name) {
  SPK_REQUIRE(data != nullptr, op, name + " must not be null");
  // Each lane reads per_lane contiguous elements; keep those reads aligned.
  SPK_REQUIRE(reinterpret_cast<uintptr_t>(data) % (2 * per_lane) == 0, op,
              name + " must be aligned to " + std::to_string(2 * per_lane) + " bytes");
  SPK_REQUIRE(token_stride % per_lane == 0 && head_stride % per_lane == 0, op,
              name + " strides must be multiples of " + std::to_string(per_lane) + " elements");
}

template <typename Fn>
void dispatch(DType dtype, int head_dim, Fn&& fn) {
  if (dtype == DType::kBF16) {
    if (head_dim == 64) return fn(__nv_bfloat16{}, std::integral_constant<int, 64>{});
    return fn(__nv_bfloat16{}, std::integral_constant<int, 128>{});
  }
  if (head_dim == 64) return fn(__half{}, std::integral_constant<int, 64>{});
  return fn(__half{}, std::integral_constant<int, 128>{});
}

}  // namespace

size_t paged_decode_workspace_bytes(int batch, int heads, int head_dim, int num_splits) {
  const size_t n = size_t(batch) * heads * num_splits;
  return 2 * align256(n * sizeof(float)) + align256(n * head_dim * sizeof(float));
}

int paged_decode_heads_per_block(int heads, int kv_heads) {
  const int group = kv_heads > 0 && heads % kv_heads == 0 ? heads / kv_heads : 1;
  for (int n : {8, 4, 2})
    if (group % n == 0) return n;
  return 1;
}

int paged_decode_choose_splits(int batch, int heads, int kv_heads, int max_seq_len, int sm_count) {
  const int blocks = std::max(1, batch * (heads / paged_decode_heads_per_block(heads, kv_heads)));
  const int target = 2 * std::max(1, sm_count);
  if (blocks >= target) return 1;
  const int by_length = std::max(1, (max_seq_len + 255) / 256);
  const int by_occupancy = (target + blocks - 1) / blocks;
  return std::max(1, std::min({by_length, by_occupancy, 64}));
}

void paged_decode(const PagedDecodeArgs& a, cudaStream_t stream) {
  const char* op = "paged_decode";
  const PagedKVCache& c = a.cache;
  check_cache(c, op);
  SPK_REQUIRE(c.head_dim == 64 || c.head_dim == 128, op, "head_dim must be 64 or 128, got " + std::to_string(c.head_dim));
  SPK_REQUIRE(a.batch >= 0 && a.batch <= 65535, op, "batch must be in [0, 65535]");
  SPK_REQUIRE(a.heads > 0 && a.heads <= 65535 && a.heads % c.kv_heads == 0, op,
              "heads (" + std::to_string(a.heads) + ") must be a positive multiple of kv_heads (" +
                  std::to_string(c.kv_heads) + ")");
  SPK_REQUIRE(std::isfinite(a.softmax_scale) && a.softmax_scale > 0.f, op, "softmax_scale must be finite and > 0");
  SPK_REQUIRE(a.max_seq_len >= 0 && int64_t(a.max_seq_len) <= int64_t(c.max_pages_per_seq) * c.page_size, op,
              "max_seq_len must be in [0, max_pages_per_seq * page_size]");
  SPK_REQUIRE(a.num_splits >= 1 && a.num_splits <= 1024, op, "num_splits must be in [1, 1024]");
  if (a.batch == 0) return;
  SPK_REQUIRE(a.seq_lens != nullptr, op, "seq_lens must be a device [batch] int32 array");
  const int per_lane = c.head_dim / 32;
  check_heads_view(a.q.data, a.q.token_stride, a.q.head_stride, per_lane, op, "q");
  check_heads_view(a.out.data, a.out.token_stride, a.out.head_stride, per_lane, op, "out");
  check_heads_view(c.k_cache, 0, 0, per_lane, op, "k_cache");
  check_heads_view(c.v_cache, 0, 0, per_lane, op, "v_cache");
  SPK_REQUIRE(a.num_splits == 1 || (a.workspace != nullptr && reinterpret_cast<uintptr_t>(a.workspace) % 256 == 0), op,
              "split-K needs a 256-byte aligned workspace of paged_decode_workspace_bytes()");

  const int tokens_per_split = std::max(1, (a.max_seq_len + a.num_splits - 1) / a.num_splits);
  const SplitWorkspace ws = a.num_splits > 1 ? split_workspace(a.workspace, a.batch, a.heads, a.num_splits)
                                             : SplitWorkspace{nullptr, nullptr, nullptr};
  const int heads_per_block = paged_decode_heads_per_block(a.heads, c.kv_heads);
  dispatch(c.dtype, c.head_dim, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    const dim3 grid(a.heads / heads_per_block, a.batch, a.num_splits);
    switch (heads_per_block) {
      case 8: paged_decode_kernel<T, D, 8><<<grid, kDecodeWarps * 32, 0, stream>>>(a, tokens_per_split, ws); break;
      case 4: paged_decode_kernel<T, D, 4><<<grid, kDecodeWarps * 32, 0, stream>>>(a, tokens_per_split, ws); break;
      case 2: paged_decode_kernel<T, D, 2><<<grid, kDecodeWarps * 32, 0, stream>>>(a, tokens_per_split, ws); break;
      default: paged_decode_kernel<T, D, 1><<<grid, kDecodeWarps * 32, 0, stream>>>(a, tokens_per_split, ws); break;
    }
    SPK_CHECK_LAUNCH(op);
    if (a.num_splits > 1) {
      paged_decode_reduce_kernel<T, D><<<dim3(a.batch, a.heads), D, 0, stream>>>(a, ws);
      SPK_CHECK_LAUNCH("paged_decode (split-K reduce)");
    }
  });
}

void paged_append(const PagedAppendArgs& a, cudaStream_t stream) {
  const char* op = "paged_append";
  const PagedKVCache& c = a.cache;
  check_cache(c, op);
  SPK_REQUIRE(a.batch >= 0 && c.kv_heads <= 65535, op, "batch must be >= 0 and kv_heads <= 65535");
  if (a.batch == 0) return;
  SPK_REQUIRE(a.positions != nullptr, op, "positions must be a device [batch] int32 array");
  SPK_REQUIRE(a.k_new.data != nullptr && a.v_new.data != nullptr, op, "k_new and v_new must not be null");
  const unsigned threads = static_cast<unsigned>(std::min(c.head_dim, 256));
  if (c.dtype == DType::kBF16)
    paged_append_kernel<__nv_bfloat16><<<dim3(a.batch, c.kv_heads), threads, 0, stream>>>(a);
  else
    paged_append_kernel<__half><<<dim3(a.batch, c.kv_heads), threads, 0, stream>>>(a);
  SPK_CHECK_LAUNCH(op);
}

}  // namespace synthpert::kernels
