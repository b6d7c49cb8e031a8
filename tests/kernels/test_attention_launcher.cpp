// Launcher preconditions of the attention and paged-decode kernels. The
// checks run on the host before anything touches the GPU, so these cases run
// everywhere ([cpu]); the pointers are fake and never dereferenced.
#ifndef SYNTHPERT_NO_KERNELS

#include <catch2/catch.hpp>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/paged_decode.h"

namespace {

using namespace synthpert::kernels;

// A well-formed forward call on fake, 16-byte aligned addresses.
AttentionForwardArgs valid_forward() {
  alignas(16) static unsigned char fake[256];
  AttentionForwardArgs a;
  a.problem.dtype = DType::kBF16;
  a.problem.head_dim = 128;
  a.problem.causal = true;
  a.problem.softmax_scale = 0.088f;
  a.problem.batch = 2;
  a.problem.heads = 6;
  a.problem.kv_heads = 2;
  a.problem.total_tokens = 10;
  a.problem.max_seqlen = 7;
  a.problem.cu_seqlens = reinterpret_cast<const int32_t*>(fake);
  a.q = {fake, 6 * 128, 128};
  a.k = {fake, 2 * 128, 128};
  a.v = {fake, 2 * 128, 128};
  a.out = {fake, 6 * 128, 128};
  a.lse_HN = reinterpret_cast<float*>(fake);
  return a;
}

}  // namespace

TEST_CASE("attention_forward names the broken precondition", "[cpu][attention]") {
  AttentionForwardArgs a = valid_forward();
  a.problem.kv_heads = 4;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("heads (6) must be a positive multiple of kv_heads (4)"));
  a = valid_forward();
  a.problem.head_dim = 96;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("head_dim must be 64 or 128, got 96"));
  a = valid_forward();
  a.problem.dtype = DType::kF32;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("dtype must be bf16 or f16, got f32"));
  a = valid_forward();
  a.problem.softmax_scale = 0.f;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("softmax_scale"));
  a = valid_forward();
  a.k.token_stride = 2 * 128 + 4;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("k token_stride and head_stride must be multiples of 8"));
  a = valid_forward();
  a.v.data = static_cast<const char*>(a.v.data) + 2;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("v must be 16-byte aligned"));
  a = valid_forward();
  a.out.data = nullptr;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("out must not be null"));
  a = valid_forward();
  a.lse_HN = nullptr;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("lse_HN"));
  a = valid_forward();
  a.problem.max_seqlen = 11;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("max_seqlen must not exceed total_tokens"));
  // The wgmma forward is refused where it cannot run (here: no sm_90 device
  // or no sm_90a code); a GPU host with both runs it in [attention_wgmma].
  if (!attention_wgmma_available()) {
    a = valid_forward();
    a.path = AttentionPath::kWgmma;
    CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("the wgmma path needs a compute capability 9.0 device"));
  }
  a = valid_forward();
  a.path = AttentionPath::kWgmma;
  a.wgmma_warpgroups = 3;
  CHECK_THROWS_WITH(attention_forward(a, nullptr),
                    attention_wgmma_available() ? Catch::Contains("wgmma_warpgroups must be 1 or 2, got 3")
                                                : Catch::Contains("the wgmma path needs"));
  a = valid_forward();
  a.path = AttentionPath::kWgmma;
  a.wgmma_key_block = 96;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), attention_wgmma_available()
                                                       ? Catch::Contains("wgmma_key_block must be 64 or 128, got 96")
                                                       : Catch::Contains("the wgmma path needs"));
  a = valid_forward();
  a.path = AttentionPath::kWgmma;
  a.wgmma_warpgroups = 1;
  a.wgmma_pingpong = true;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), attention_wgmma_available()
                                                       ? Catch::Contains("wgmma_pingpong needs wgmma_warpgroups 2")
                                                       : Catch::Contains("the wgmma path needs"));
  a = valid_forward();
  a.path = AttentionPath::kWgmma;
  a.wgmma_tma = true;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), attention_wgmma_available()
                                                       ? Catch::Contains("wgmma_tma needs wgmma_pingpong")
                                                       : Catch::Contains("the wgmma path needs"));
  // TMA maps need each token's heads below the next token ([N, H, D] order).
  a = valid_forward();
  a.path = AttentionPath::kWgmma;
  a.wgmma_pingpong = true;
  a.wgmma_tma = true;
  a.q = {a.q.data, 128, 10 * 128};  // [H, N, D]: head-major
  CHECK_THROWS_WITH(attention_forward(a, nullptr), attention_wgmma_available()
                                                       ? Catch::Contains("wgmma_tma needs q token-major")
                                                       : Catch::Contains("the wgmma path needs"));
  // Keys held apart: seqused_k counts within cu_seqlens_k's regions.
  a = valid_forward();
  a.problem.seqused_k = a.problem.cu_seqlens;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("seqused_k needs cu_seqlens_k"));
  a = valid_forward();
  a.problem.cu_seqlens_k = a.problem.cu_seqlens;
  a.problem.total_keys = -1;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("total_keys must be >= 0"));
  // k's stride rule holds for its own tokens.
  a = valid_forward();
  a.problem.cu_seqlens_k = a.problem.cu_seqlens;
  a.problem.total_keys = 2;
  a.k.token_stride = 0;
  CHECK_THROWS_WITH(attention_forward(a, nullptr), Catch::Contains("k token_stride must be > 0"));
  // An empty batch is valid and launches nothing (no device needed).
  a = valid_forward();
  a.problem.batch = 0;
  CHECK_NOTHROW(attention_forward(a, nullptr));
}

TEST_CASE("attention_backward requires an aligned workspace and the forward's lse", "[cpu][attention]") {
  const AttentionForwardArgs f = valid_forward();
  AttentionBackwardArgs a;
  a.problem = f.problem;
  a.q = f.q;
  a.k = f.k;
  a.v = f.v;
  a.out = f.q;
  a.dout = f.q;
  a.dq = f.out;
  a.dk = {f.out.data, 2 * 128, 128};
  a.dv = {f.out.data, 2 * 128, 128};
  a.lse_HN = f.lse_HN;
  CHECK_THROWS_WITH(attention_backward(a, nullptr), Catch::Contains("workspace must be 256-byte aligned"));
  a.problem.cu_seqlens_k = a.problem.cu_seqlens;
  CHECK_THROWS_WITH(attention_backward(a, nullptr),
                    Catch::Contains("keys apart from the queries (cu_seqlens_k, seqused_k) are forward only"));
  a.problem.cu_seqlens_k = nullptr;
  a.lse_HN = nullptr;
  CHECK_THROWS_WITH(attention_backward(a, nullptr), Catch::Contains("lse_HN"));
  a.key_block = 96;
  CHECK_THROWS_WITH(attention_backward(a, nullptr), Catch::Contains("key_block must be 0 (choose), 64 or 128, got 96"));
  // The choice: a named block is kept; 0 takes the measured 64-key kernel.
  a.key_block = 128;
  CHECK(attention_backward_key_block(a) == 128);
  a.key_block = 64;
  CHECK(attention_backward_key_block(a) == 64);
  a.key_block = 0;
  CHECK(attention_backward_key_block(a) == 64);
  // kAuto stays on the measured mma.sync kernel; a named path is kept, and
  // the wgmma kernel's fixed 128 keys are its default and only block.
  CHECK(attention_backward_path(a) == AttentionPath::kMmaSync);
  a.path = AttentionPath::kWgmma;
  CHECK(attention_backward_path(a) == AttentionPath::kWgmma);
  CHECK(attention_backward_key_block(a) == 128);
  a.key_block = 64;
  CHECK_THROWS_WITH(attention_backward(a, nullptr),
                    Catch::Contains("the wgmma backward takes 128 keys per block: key_block must be 0 or 128, got 64"));
  a.key_block = 0;
  if (!attention_wgmma_available()) {
    alignas(256) static unsigned char workspace[256];
    a.workspace = workspace;
    a.lse_HN = f.lse_HN;
    CHECK_THROWS_WITH(attention_backward(a, nullptr), Catch::Contains("the wgmma path needs a compute capability 9.0 device"));
    a.workspace = nullptr;
  }
  a.path = AttentionPath::kMmaSync;
  CHECK(attention_backward_path(a) == AttentionPath::kMmaSync);
  // dQ accumulator rounded up to 256 bytes, then Delta.
  CHECK(attention_backward_workspace_bytes(10, 6, 128) == 30720 + 256);
}

TEST_CASE("paged_decode names the broken precondition", "[cpu][paged]") {
  alignas(16) static unsigned char fake[256];
  PagedDecodeArgs a;
  a.cache.k_cache = fake;
  a.cache.v_cache = fake;
  a.cache.dtype = DType::kBF16;
  a.cache.num_pages = 4;
  a.cache.page_size = 16;
  a.cache.kv_heads = 2;
  a.cache.head_dim = 128;
  a.cache.block_table = reinterpret_cast<const int32_t*>(fake);
  a.cache.max_pages_per_seq = 4;
  a.batch = 3;
  a.heads = 5;
  a.softmax_scale = 0.1f;
  a.q = {fake, 640, 128};
  a.out = {fake, 640, 128};
  a.seq_lens = reinterpret_cast<const int32_t*>(fake);
  a.max_seq_len = 64;
  CHECK_THROWS_WITH(paged_decode(a, nullptr), Catch::Contains("heads (5) must be a positive multiple of kv_heads (2)"));
  a.heads = 6;
  a.max_seq_len = 65;
  CHECK_THROWS_WITH(paged_decode(a, nullptr), Catch::Contains("max_seq_len must be in [0, max_pages_per_seq * page_size]"));
  a.max_seq_len = 64;
  a.num_splits = 4;
  CHECK_THROWS_WITH(paged_decode(a, nullptr), Catch::Contains("split-K needs a 256-byte aligned workspace"));
  a.num_splits = 1;
  a.cache.head_dim = 80;
  CHECK_THROWS_WITH(paged_decode(a, nullptr), Catch::Contains("head_dim must be 64 or 128, got 80"));
  a.cache.head_dim = 128;
  a.q.head_stride = 130;
  CHECK_THROWS_WITH(paged_decode(a, nullptr), Catch::Contains("q strides must be multiples of 4 elements"));
}

TEST_CASE("paged_decode_choose_splits fills the GPU only when blocks are scarce", "[cpu][paged]") {
  CHECK(paged_decode_choose_splits(64, 32, 32, 4096, 132) == 1);    // 2048 blocks already
  CHECK(paged_decode_choose_splits(1, 8, 8, 100, 132) == 1);        // too short to split
  CHECK(paged_decode_choose_splits(1, 8, 8, 16384, 132) == 33);     // ceil(264 / 8)
  CHECK(paged_decode_choose_splits(1, 1, 1, 1 << 20, 132) == 64);   // capped
  // Llama-3-8B's 32:8 GQA: 4 heads per block, 8 x 8 = 64 blocks: ceil(264 / 64).
  CHECK(paged_decode_choose_splits(8, 32, 8, 4096, 132) == 5);
}

TEST_CASE("paged_decode_heads_per_block takes the largest of 8, 4, 2 dividing the GQA group", "[cpu][paged]") {
  CHECK(paged_decode_heads_per_block(32, 32) == 1);  // no GQA
  CHECK(paged_decode_heads_per_block(32, 8) == 4);
  CHECK(paged_decode_heads_per_block(32, 4) == 8);
  CHECK(paged_decode_heads_per_block(64, 4) == 8);   // group 16: two blocks per kv head
  CHECK(paged_decode_heads_per_block(12, 3) == 4);
  CHECK(paged_decode_heads_per_block(4, 2) == 2);
  CHECK(paged_decode_heads_per_block(6, 2) == 1);    // group 3
  CHECK(paged_decode_heads_per_block(5, 1) == 1);    // group 5
}

#endif  // SYNTHPERT_NO_KERNELS
