// The kernel branch of engine/paged_decode.cpp run on CPU against the host
// emulation of kernels/paged_decode (host_paged_decode.cpp): bf16 cache rows
// of different lengths (empty, inside one page, several pages, split-K),
// GQA, a strided q; the output against fp64 softmax attention over each
// row's first seq_lens tokens.
// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
#include "engine/kernel_launch.h"
#include "engine/paged_decode.h"

#include "tests/engine_host/host_test_util.h"

#include <catch2/catch.hpp>

using namespace synthpert::engine;
using synthpert::test::rel_err;

TEST_CASE("paged decode's kernel branch reads the cache as pages", "[engine_host]") {
  REQUIRE(paged_decode_kernel_supports(torch::kCPU, torch::kBFloat16, 64));
  torch::manual_seed(12);
  const int64_t B = 4, H = 6, Hkv = 2, D = 64, C = 48, page = 16;
  const auto k_cache = torch::randn({B, C, Hkv, D}).to(torch::kBFloat16);
  const auto v_cache = torch::randn({B, C, Hkv, D}).to(torch::kBFloat16);
  // q as a view with a gap between rows (as a slice of a larger projection).
  const auto q_store = torch::randn({B, H + 1, D}).to(torch::kBFloat16);
  const auto q = q_store.narrow(1, 0, H);
  REQUIRE(q.stride(0) == (H + 1) * D);
  const std::vector<int32_t> lens = {0, 9, 33, 48};
  PagedDecodeInputs in;
  in.page_size = page;
  in.block_table = torch::arange(B * (C / page), torch::kInt32).view({B, C / page});
  in.seq_lens = torch::tensor(lens, torch::kInt32);
  in.max_seq_len = 48;
  const double scale = 0.125;
  const auto out = paged_decode_attention(q, k_cache, v_cache, in, scale);

  auto ref = torch::zeros({B, H, D}, torch::kFloat64);
  for (int64_t b = 0; b < B; ++b) {
    if (lens[b] == 0) continue;
    const auto k = k_cache[b].narrow(0, 0, lens[b]).to(torch::kFloat64);  // (L, Hkv, D)
    const auto v = v_cache[b].narrow(0, 0, lens[b]).to(torch::kFloat64);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t hk = h / (H / Hkv);
      const auto p = torch::softmax(torch::mv(k.select(1, hk), q[b][h].to(torch::kFloat64)) * scale, 0);
      ref[b][h] = torch::mv(v.select(1, hk).t(), p);
    }
  }
  CHECK(out.scalar_type() == torch::kBFloat16);
  CHECK(torch::equal(out[0], torch::zeros({H, D}, torch::kBFloat16)));  // an empty row gives zeros
  CHECK(rel_err(out, ref) < 1e-2);
  // The op's torch math (float32 inputs: no kernel) on the same cache.
  const auto plain = paged_decode_attention(q.to(torch::kFloat32), k_cache.to(torch::kFloat32),
                                            v_cache.to(torch::kFloat32), in, scale);
  CHECK(rel_err(plain, ref) < 1e-5);
}

TEST_CASE("paged decode's kernel branch reads a row range of a larger cache", "[engine_host]") {
  // As the serving scheduler passes it: rows [2, 5) of a 5-row pool, the
  // caches narrowed on the batch dimension, the block table the pool's
  // identity table shifted to the view's first row.
  torch::manual_seed(13);
  const int64_t pool_rows = 5, begin = 2, B = 3, H = 4, Hkv = 2, D = 64, C = 32, page = 16;
  const auto k_pool = torch::randn({pool_rows, C, Hkv, D}).to(torch::kBFloat16);
  const auto v_pool = torch::randn({pool_rows, C, Hkv, D}).to(torch::kBFloat16);
  const auto k_cache = k_pool.narrow(0, begin, B), v_cache = v_pool.narrow(0, begin, B);
  const auto q = torch::randn({B, H, D}).to(torch::kBFloat16);
  const std::vector<int32_t> lens = {17, 1, 32};
  PagedDecodeInputs in;
  in.page_size = page;
  in.block_table = torch::arange(pool_rows * (C / page), torch::kInt32).view({pool_rows, C / page}).narrow(0, begin, B) -
                   static_cast<int32_t>(begin * (C / page));
  in.seq_lens = torch::tensor(lens, torch::kInt32);
  in.max_seq_len = C;
  const double scale = 0.125;
  const auto out = paged_decode_attention(q, k_cache, v_cache, in, scale);
  auto ref = torch::zeros({B, H, D}, torch::kFloat64);
  for (int64_t b = 0; b < B; ++b) {
    const auto k = k_pool[begin + b].narrow(0, 0, lens[b]).to(torch::kFloat64);
    const auto v = v_pool[begin + b].narrow(0, 0, lens[b]).to(torch::kFloat64);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t hk = h / (H / Hkv);
      const auto p = torch::softmax(torch::mv(k.select(1, hk), q[b][h].to(torch::kFloat64)) * scale, 0);
      ref[b][h] = torch::mv(v.select(1, hk).t(), p);
    }
  }
  CHECK(rel_err(out, ref) < 1e-2);
}
