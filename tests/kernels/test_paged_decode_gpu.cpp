// Paged KV-cache append and decode kernels against the CPU reference ([gpu]):
// sequences of different lengths (empty, one token, partially filled last
// page, long), GQA, split-K off and on, non-contiguous q/out.
#ifndef SYNTHPERT_NO_KERNELS

#include <ATen/ATen.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/paged_decode.h"
#include "tests/kernels/test_attention_common.h"
#include "tests/reference/kernels/attention_ref.h"

namespace {

using synthpert::kernels::DType;
using synthpert::reference::PagedCacheShape;
using namespace synthpert::test;

struct DecodeCase {
  std::vector<int32_t> seq_lens;  // after this step's append
  int heads, kv_heads, head_dim, page_size;
  bool strided;
};

// Eager-PyTorch-style decode in dtype for one sequence: q (H, D), k/v (T, Hkv, D).
at::Tensor torch_style_decode(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                              at::ScalarType dt) {
  const int64_t H = q.size(0), rep = H / k.size(1);
  const at::Tensor ks = k.transpose(0, 1).repeat_interleave(rep, 0).to(at::kFloat);  // (H, T, D)
  const at::Tensor vs = v.transpose(0, 1).repeat_interleave(rep, 0).to(at::kFloat);
  const at::Tensor scores = rnd(rnd(at::matmul(ks, q.to(at::kFloat).unsqueeze(-1)).squeeze(-1), dt) * scale, dt);
  const at::Tensor prob = rnd(at::softmax(scores, -1), dt);                      // (H, T)
  return rnd(at::matmul(prob.unsqueeze(1), vs).squeeze(1), dt).to(at::kDouble);  // (H, D)
}

void run_decode_case(const DecodeCase& c, DType dtype, int num_splits, uint32_t seed) {
  const at::ScalarType dt = torch_dtype(dtype);
  PagedCacheShape s;
  s.batch = static_cast<int>(c.seq_lens.size());
  s.heads = c.heads;
  s.kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.page_size = c.page_size;
  s.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  const int max_len = *std::max_element(c.seq_lens.begin(), c.seq_lens.end());
  s.max_pages_per_seq = std::max(1, (max_len + c.page_size - 1) / c.page_size + 1);  // one spare column
  int pages_needed = 0;
  for (int len : c.seq_lens) pages_needed += (len + c.page_size - 1) / c.page_size;
  s.num_pages = pages_needed + 3;  // a few pages no sequence owns
  const int B = s.batch, H = s.heads, Hkv = s.kv_heads, D = s.head_dim;
  INFO("B=" << B << " H=" << H << " Hkv=" << Hkv << " D=" << D << " page=" << c.page_size << " splits=" << num_splits
            << " dtype=" << synthpert::kernels::dtype_name(dtype));

  // Pages assigned in shuffled order; unused table entries point at page 0 or
  // -1 alternately, which the kernels must never read.
  std::vector<int32_t> pages(s.num_pages);
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), std::mt19937(seed));
  std::vector<int32_t> table(static_cast<size_t>(B) * s.max_pages_per_seq);
  size_t next = 0;
  for (int b = 0; b < B; ++b)
    for (int p = 0; p < s.max_pages_per_seq; ++p)
      table[b * s.max_pages_per_seq + p] = p * c.page_size < c.seq_lens[b] ? pages[next++] : (p % 2 ? -1 : 0);

  // The cache before the step holds len - 1 tokens per sequence; the step
  // appends token len - 1 (sequences of length 0 append nothing).
  const int64_t cache_rows = int64_t(s.num_pages) * s.page_size;
  at::Tensor k_cache = random_rounded({cache_rows, Hkv, D}, dt, seed + 1);
  at::Tensor v_cache = random_rounded({cache_rows, Hkv, D}, dt, seed + 2);
  const at::Tensor k_new = random_rounded({B, Hkv, D}, dt, seed + 3), v_new = random_rounded({B, Hkv, D}, dt, seed + 4);
  const at::Tensor q = random_rounded({B, H, D}, dt, seed + 5);
  std::vector<int32_t> positions(B);
  for (int b = 0; b < B; ++b) positions[b] = c.seq_lens[b] - 1;

  std::vector<double> ref_k = to_vector(k_cache), ref_v = to_vector(v_cache);
  synthpert::reference::paged_append_ref(s, to_vector(k_new), to_vector(v_new), table, positions, ref_k, ref_v);
  const std::vector<double> ref_out = synthpert::reference::paged_decode_ref(s, to_vector(q), ref_k, ref_v, table, c.seq_lens);

  StridedDeviceTensor kc(cache_rows, Hkv, D, Hkv * D, D, dt), vc(cache_rows, Hkv, D, Hkv * D, D, dt);
  kc.upload(k_cache);
  vc.upload(v_cache);
  const int64_t hs = c.strided ? D + 8 : D;
  StridedDeviceTensor q_(B, H, D, c.strided ? H * hs + 32 : H * hs, hs, dt), o_(B, H, D, c.strided ? H * hs + 32 : H * hs, hs, dt);
  StridedDeviceTensor kn(B, Hkv, D, Hkv * D, D, dt), vn(B, Hkv, D, Hkv * D, D, dt);
  q_.upload(q);
  o_.upload_poison();
  kn.upload(k_new);
  vn.upload(v_new);
  DeviceBuffer table_d(table.size() * sizeof(int32_t)), lens_d(B * sizeof(int32_t)), pos_d(B * sizeof(int32_t));
  table_d.upload(table.data(), table_d.bytes());
  lens_d.upload(c.seq_lens.data(), lens_d.bytes());
  pos_d.upload(positions.data(), pos_d.bytes());

  synthpert::kernels::PagedKVCache cache;
  cache.k_cache = kc.device.get();
  cache.v_cache = vc.device.get();
  cache.dtype = dtype;
  cache.num_pages = s.num_pages;
  cache.page_size = s.page_size;
  cache.kv_heads = Hkv;
  cache.head_dim = D;
  cache.block_table = table_d.as<int32_t>();
  cache.max_pages_per_seq = s.max_pages_per_seq;

  synthpert::kernels::PagedAppendArgs aa;
  aa.cache = cache;
  aa.batch = B;
  aa.k_new = {kn.device.get(), kn.token_stride, kn.head_stride};
  aa.v_new = {vn.device.get(), vn.token_stride, vn.head_stride};
  aa.positions = pos_d.as<int32_t>();
  synthpert::kernels::paged_append(aa, nullptr);

  synthpert::kernels::PagedDecodeArgs da;
  da.cache = cache;
  da.batch = B;
  da.heads = H;
  da.softmax_scale = static_cast<float>(s.scale);
  da.q = {q_.device.get(), q_.token_stride, q_.head_stride};
  da.out = {o_.device.get(), o_.token_stride, o_.head_stride};
  da.seq_lens = lens_d.as<int32_t>();
  da.max_seq_len = max_len;
  da.num_splits = num_splits;
  DeviceBuffer ws(synthpert::kernels::paged_decode_workspace_bytes(B, H, D, num_splits));
  da.workspace = ws.get();
  synthpert::kernels::paged_decode(da, nullptr);
  cuda_ok(cudaDeviceSynchronize(), "paged append + decode");

  // The append is a copy: the cache must equal the reference bit for bit.
  CHECK(max_abs_err(kc.download(), at::tensor(ref_k, at::kDouble).reshape({cache_rows, Hkv, D})) == 0.0);
  CHECK(max_abs_err(vc.download(), at::tensor(ref_v, at::kDouble).reshape({cache_rows, Hkv, D})) == 0.0);

  const at::Tensor ref = at::tensor(ref_out, at::kDouble).reshape({B, H, D});
  const at::Tensor got = o_.download();
  // Peer from the appended reference cache, gathered per sequence.
  const at::Tensor kr = at::tensor(ref_k, at::kDouble).reshape({cache_rows, Hkv, D});
  const at::Tensor vr = at::tensor(ref_v, at::kDouble).reshape({cache_rows, Hkv, D});
  at::Tensor peer = at::zeros({B, H, D}, at::kDouble);
  for (int b = 0; b < B; ++b) {
    if (c.seq_lens[b] == 0) continue;
    std::vector<int64_t> rows;
    for (int t = 0; t < c.seq_lens[b]; ++t)
      rows.push_back(int64_t{table[b * s.max_pages_per_seq + t / c.page_size]} * c.page_size + t % c.page_size);
    const at::Tensor idx = at::tensor(rows, at::kLong);
    peer[b].copy_(torch_style_decode(q[b], kr.index_select(0, idx), vr.index_select(0, idx), s.scale, dt));
  }
  check_within_peer("decode out", max_abs_err(got, ref), max_abs_err(peer, ref), half_ulp(dt, max_abs(ref)));
}

// Sequences up to 256 tokens are "small"; longer ones carry [large] so the
// sanitizer runs can leave them out.
void run_decode_cases(bool large) {
  const std::vector<DecodeCase> cases = {
      {{1}, 1, 1, 64, 16, false},
      {{5, 16, 17, 0, 33}, 6, 2, 128, 16, true},  // empty sequence, partial and full last pages
      {{123, 45, 7, 1, 64, 65}, 5, 1, 128, 8, false},
      {{40, 3, 129, 0}, 8, 1, 64, 16, false},  // 8 heads per block
      {{77, 200, 1}, 4, 2, 128, 8, true},     // 2 heads per block
      {{1023, 1, 300}, 3, 3, 64, 16, false},
      {{2049, 700}, 12, 3, 128, 32, true},  // long: split-K matters
  };
  uint32_t seed = large ? 500 : 300;
  for (DType dtype : {DType::kBF16, DType::kF16})
    for (const DecodeCase& c : cases) {
      const int max_len = *std::max_element(c.seq_lens.begin(), c.seq_lens.end());
      if ((max_len > 256) != large) continue;
      // Split-K off, a fixed split, more splits than some sequences have
      // tokens, and the heuristic's choice for a 132-SM GPU.
      for (int splits : {1, 4, 37, synthpert::kernels::paged_decode_choose_splits(
                                          static_cast<int>(c.seq_lens.size()), c.heads, c.kv_heads, max_len, 132)})
        run_decode_case(c, dtype, splits, seed += 10);
    }
}

}  // namespace

TEST_CASE("paged append and decode match the reference (short sequences)", "[gpu][paged]") { run_decode_cases(false); }
TEST_CASE("paged append and decode match the reference (long sequences)", "[gpu][paged][large]") { run_decode_cases(true); }

#endif  // SYNTHPERT_NO_KERNELS
