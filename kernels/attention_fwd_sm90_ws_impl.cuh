// Attention forward on Hopper tensor cores with warp specialisation and
// ping-pong scheduling (the rest of FlashAttention-3's forward design),
// included by kernels/attention_fwd_sm90_impl.cuh, whose launcher runs it
// when AttentionForwardArgs::wgmma_pingpong is set.
//
// The arithmetic per warpgroup is that of attention_fwd_sm90_impl.cuh: the
// same WgmmaForwardRows (attention_fwd_sm90_rows.cuh; S as one wgmma per 16
// columns of D from swizzled shared memory, P V from registers, the softmax
// of S(j) overlapping P(j-1) V(j-1)); what changes is who loads and how the
// warpgroups meet:
//   * a block is three warpgroups. Warpgroup 0 only loads: Q, then K and V
//     tiles in the order the consumers need them, into a ring of kStages
//     stages per tensor, either with cp.async by its 128 threads or (kTma)
//     with TMA tile copies issued by one thread. Warpgroups 1 and 2 only
//     compute, on 64 query rows each. The producer gives up registers
//     (setmaxnreg) that the consumers take;
//   * no block-wide barrier after the start: each stage has a "full"
//     mbarrier (the producer's 128 threads arrive once their copies have
//     landed and are fenced for the async proxy; with TMA, one arrival
//     expects the tile's bytes and the copies complete them) and an "empty"
//     one (the consumers' 256 threads arrive once the wgmma reading it has
//     retired), so a consumer waits only for the tile it needs and the
//     producer only for the stage it refills;
//   * the consumers take turns issuing their wgmmas (named barriers 1 and 2):
//     one warpgroup's softmax runs while the other's GEMMs keep the tensor
//     cores busy, instead of both warpgroups' softmaxes leaving them idle at
//     the same time.
//
// Status: compiled for sm_90a on every build and run on CI by the host
// emulation (tests/simt: mbarriers, named barriers, TMA copies and wgmma
// emulated from the PTX ISA, ThreadSanitizer over the handoffs). Not yet
// run on a GPU: kAuto does not pick it until bench_attention's "pingpong"
// rows say so.
#pragma once

#include <type_traits>

#include "kernels/attention.h"
#include "kernels/attention_fwd_softmax.cuh"
#include "kernels/attention_fwd_sm90_rows.cuh"
#include "kernels/attention_pipeline_ptx.cuh"
#include "kernels/attention_tensor_map.h"
#include "kernels/attention_wgmma.cuh"

namespace synthpert::kernels::attn {

template <int D, int kKeysPerTile>
struct FwdSm90WsConfig {
  static_assert(kKeysPerTile == 64 || kKeysPerTile == 128, "S is one m64n64k16 or m64n128k16 per k16 step");
  static constexpr int kConsumers = 2;             // warpgroups that compute
  static constexpr int kBlockM = 64 * kConsumers;  // query rows per block
  static constexpr int kBlockN = kKeysPerTile;     // key tokens per tile
  static constexpr int kThreads = 128 * (1 + kConsumers);
  static constexpr int kConsumerThreads = 128 * kConsumers;
  static constexpr int kStages = 2;  // K and V rings
  // 65536 registers per SM, one block: 168 per thread at launch; the
  // producer keeps 56 (at 40 its address arithmetic spilled 16 bytes) and
  // each consumer thread gets 224. ptxas allocates the consumer code to that
  // limit: without the raise, 128-key tiles spill 208 bytes at 168 (CUDA 13,
  // -Xptxas -v); with it, neither tile spills.
  static constexpr int kProducerRegisters = 56;
  static constexpr int kConsumerRegisters = 224;
  static_assert(128 * kProducerRegisters + kConsumerThreads * kConsumerRegisters <= 65536, "register file");
  static constexpr int kQBytes = kBlockM * D * 2;
  static constexpr int kKVBytes = kBlockN * D * 2;
  static constexpr size_t kTileBytes = size_t(kQBytes) + 2 * kStages * size_t(kKVBytes);
  // Q, the rings, the mbarriers (Q full, then full and empty of each K and
  // V stage), and one swizzle atom of slack to align the tiles to 1024 bytes.
  static constexpr int kBarriers = 1 + 4 * kStages;
  static constexpr size_t kSmemBytes = kTileBytes + kBarriers * sizeof(uint64_t) + kSwizzleAtomBytes;
};

// The kernel's parameters. The tensor maps are used with kTma only: maps of
// q, k and v over (channel, head, token) whose boxes are 64 channels (one
// swizzled panel) of one head by kBlockM (q) or kBlockN (k, v) tokens
// (encode_heads_tensor_map). TMA reads a map from parameter space, hence
// __grid_constant__.
struct FwdSm90WsParams {
  AttentionForwardArgs args;
  CUtensorMap q_map, k_map, v_map;
};

template <typename T, int D, bool kCausal, int kKeysPerTile, bool kTma>
__global__ void __launch_bounds__(FwdSm90WsConfig<D, kKeysPerTile>::kThreads, 1)
    attention_fwd_sm90_ws_kernel(const __grid_constant__ FwdSm90WsParams params) {
#if SPK_HAVE_WGMMA
  const AttentionForwardArgs& args = params.args;
  using Cfg = FwdSm90WsConfig<D, kKeysPerTile>;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kStages = Cfg::kStages;
  using Rows = WgmmaForwardRows<T, D, kCausal, kBlockM, kBlockN>;

  const AttentionProblem& p = args.problem;
  const auto blk = ForwardBlock<T>::template locate<kCausal, kBlockM>(args);
  if (!blk.valid) return;  // the whole block, before any barrier
  const int seqlen = blk.seqlen, m0 = blk.m0;

  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((kSwizzleAtomBytes - smem_addr(smem_raw) % kSwizzleAtomBytes) % kSwizzleAtomBytes);
  unsigned char* sQ = smem;
  unsigned char* sK = sQ + Cfg::kQBytes;
  unsigned char* sV = sK + kStages * Cfg::kKVBytes;
  uint64_t* q_full = reinterpret_cast<uint64_t*>(smem + Cfg::kTileBytes);
  uint64_t* k_full = q_full + 1;
  uint64_t* k_empty = k_full + kStages;
  uint64_t* v_full = k_empty + kStages;
  uint64_t* v_empty = v_full + kStages;
  auto k_stage = [&](int nb) { return sK + (nb % kStages) * Cfg::kKVBytes; };
  auto v_stage = [&](int nb) { return sV + (nb % kStages) * Cfg::kKVBytes; };
  // Tile nb uses its stage for the (nb / kStages)-th time: the phase of that
  // stage's barriers to wait for.
  auto use_parity = [](int nb) { return uint32_t(nb / kStages) & 1; };

  const int keylen = blk.keylen;
  const int n_blocks = blk.template key_blocks<kCausal, kBlockM, kBlockN>();

  // A full barrier's arrivals: the producer's 128 threads, or with TMA the
  // one thread that issues the copies (the bytes are counted as well).
  constexpr unsigned kFullArrivals = kTma ? 1 : 128;
  if (threadIdx.x == 0) {
    mbarrier_init(q_full, kFullArrivals);
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&k_full[s], kFullArrivals);
      mbarrier_init(&v_full[s], kFullArrivals);
      mbarrier_init(&k_empty[s], Cfg::kConsumerThreads);
      mbarrier_init(&v_empty[s], Cfg::kConsumerThreads);
    }
    fence_mbarrier_init();
  }
  __syncthreads();

  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    // Producer. Loads go out in the order the consumers wait for them: Q,
    // K(0), then K(nb), V(nb-1) for each later tile, then the last V; a stage
    // is refilled only once its "empty" barrier has completed.
    //   cp.async: the 128 threads copy; a load's full barrier is signalled
    //     after the next load has been issued, so one load is always in
    //     flight while the previous one lands.
    //   TMA: one thread issues every copy; a tile is D / 64 boxes, one per
    //     swizzled panel, and its full barrier expects all of their bytes.
    setmaxnreg_dec<Cfg::kProducerRegisters>();
    if (kTma && threadIdx.x != 0) return;
    const int kv_head = blk.h / (p.heads / p.kv_heads);
    uint64_t* pending = nullptr;  // cp.async: the full barrier of the load in flight
    // Loads `rows` tokens from `token` on (the sequence's first valid_rows
    // of them exist) of one head: from `src` with cp.async or through `map`.
    auto issue = [&](auto rows, const CUtensorMap* map, int head, int token, const T* src, int64_t token_stride,
                     int valid_rows, unsigned char* dst, uint64_t* full) {
      constexpr int kRows = decltype(rows)::value;
      if constexpr (kTma) {
        mbarrier_arrive_expect_tx(full, uint32_t(kRows) * D * sizeof(T));
        for (int panel = 0; panel < D / 64; ++panel)
          tma_load_3d(dst + panel * kRows * kSwizzleLineBytes, map, full, panel * 64, head, token);
      } else {
        load_tile_swizzled_async<T, kRows, D, 128>(dst, src, token_stride, valid_rows);
        cp_async_commit();
        if (pending) {
          cp_async_wait<1>();          // every load before this one has landed
          fence_proxy_async_shared();  // and is visible to the consumers' wgmma
          mbarrier_arrive(pending);
        }
        pending = full;
      }
    };
    using KeyRows = std::integral_constant<int, kBlockN>;
    auto load_k = [&](int nb) {
      if (nb >= kStages) mbarrier_wait_parity(&k_empty[nb % kStages], use_parity(nb - kStages));
      issue(KeyRows{}, &params.k_map, kv_head, blk.key_begin + nb * kBlockN,
            blk.k_base + int64_t(nb) * kBlockN * args.k.token_stride, args.k.token_stride, keylen - nb * kBlockN,
            k_stage(nb), &k_full[nb % kStages]);
    };
    auto load_v = [&](int nb) {
      if (nb >= kStages) mbarrier_wait_parity(&v_empty[nb % kStages], use_parity(nb - kStages));
      issue(KeyRows{}, &params.v_map, kv_head, blk.key_begin + nb * kBlockN,
            blk.v_base + int64_t(nb) * kBlockN * args.v.token_stride, args.v.token_stride, keylen - nb * kBlockN,
            v_stage(nb), &v_full[nb % kStages]);
    };
    issue(std::integral_constant<int, kBlockM>{}, &params.q_map, blk.h, blk.seq_begin + m0, blk.q_base,
          args.q.token_stride, seqlen - m0, sQ, q_full);
    load_k(0);
    for (int nb = 1; nb < n_blocks; ++nb) {
      load_k(nb);
      load_v(nb - 1);
    }
    load_v(n_blocks - 1);
    if constexpr (!kTma) {
      cp_async_wait<0>();
      fence_proxy_async_shared();
      mbarrier_arrive(pending);
    }
    return;
  }

  // Consumers.
  setmaxnreg_inc<Cfg::kConsumerRegisters>();
  const int consumer = warpgroup - 1;
  const int warp = threadIdx.x / 32 - 4, lane = threadIdx.x % 32;  // warp within the consumers
  // Consumer c owns rows 64c..64c+63 (whole 8-row groups of every Q panel).
  const int row_lo = m0 + warp * 16 + lane / 4;
  Rows rows(sQ + consumer * 64 * kSwizzleLineBytes, keylen, blk.key_shift, row_lo, lane, p.softmax_scale);

  // Turn-taking: a consumer issues its wgmmas only in its turn (its named
  // barrier, 1 or 2, completes with its own 128 threads and the other
  // consumer's 128 arrivals), and hands the turn over right after issuing.
  // Consumer 0 starts. Both take n_blocks + 1 turns; consumer 1 skips the
  // hand-over after its last turn, which consumer 0 would never use.
  const int turns = n_blocks + 1;
  int turn = 0;
  if (consumer == 1) named_barrier_arrive(1, Cfg::kConsumerThreads);
  auto turn_begin = [&] { named_barrier_sync(1 + consumer, Cfg::kConsumerThreads); };
  auto turn_end = [&] {
    if (!(consumer == 1 && turn == turns - 1)) named_barrier_arrive(2 - consumer, Cfg::kConsumerThreads);
    ++turn;
  };

  // Prologue: S(0) and its softmax.
  mbarrier_wait_parity(q_full, 0);
  mbarrier_wait_parity(&k_full[0], 0);
  {
    typename Rows::Scores s = {};
    pin_registers(s);
    turn_begin();
    wgmma_fence();
    rows.issue_scores(s, k_stage(0));
    turn_end();
    wgmma_wait<0>();
    pin_registers(s);
    mbarrier_arrive(&k_empty[0]);
    rows.scores_to_p(s, 0);
    rows.keep_p(s);
  }

  // Iteration nb: S(nb) and P(nb-1) V(nb-1) issued in one turn; S(nb)'s
  // softmax overlaps the P V (and the other consumer's turn).
  for (int nb = 1; nb < n_blocks; ++nb) {
    mbarrier_wait_parity(&k_full[nb % kStages], use_parity(nb));
    mbarrier_wait_parity(&v_full[(nb - 1) % kStages], use_parity(nb - 1));
    typename Rows::Scores s = {};
    pin_registers(s);
    rows.pin_pv_operands();
    turn_begin();
    wgmma_fence();
    rows.issue_scores(s, k_stage(nb));
    rows.issue_pv(v_stage(nb - 1));
    turn_end();
    wgmma_wait<1>();  // S(nb)
    pin_registers(s);
    mbarrier_arrive(&k_empty[nb % kStages]);
    rows.scores_to_p(s, nb);
    wgmma_wait<0>();  // P(nb-1) V(nb-1)
    rows.pin_pv_operands();
    mbarrier_arrive(&v_empty[(nb - 1) % kStages]);
    rescale_output(rows.o_acc, rows.rescale);
    rows.keep_p(s);
  }

  // Epilogue: the last tile's P V.
  mbarrier_wait_parity(&v_full[(n_blocks - 1) % kStages], use_parity(n_blocks - 1));
  rows.pin_pv_operands();
  turn_begin();
  wgmma_fence();
  rows.issue_pv(v_stage(n_blocks - 1));
  turn_end();
  wgmma_wait<0>();
  pin_registers(rows.o_acc);

  write_forward_rows<T>(args, rows.o_acc, rows.row_max, rows.row_sum, blk.seq_begin, seqlen, blk.h, row_lo,
                        row_lo + 8, lane % 4);
#else
  (void)params;
  __trap();  // the launcher never picks this kernel without sm_90a code
#endif
}

template <typename T, int D, bool kCausal, int kKeysPerTile, bool kTma>
void launch_attention_fwd_sm90_ws(const AttentionForwardArgs& args, cudaStream_t stream) {
  using Cfg = FwdSm90WsConfig<D, kKeysPerTile>;
  auto kernel = attention_fwd_sm90_ws_kernel<T, D, kCausal, kKeysPerTile, kTma>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)),
             "attention_forward", "setting dynamic shared memory (wgmma ping-pong path)");
  FwdSm90WsParams params{};
  params.args = args;
  if constexpr (kTma) {
    const AttentionProblem& p = args.problem;
    params.q_map = encode_heads_tensor_map(args.q, p, p.heads, p.total_tokens, Cfg::kBlockM, "q");
    const int64_t keys = p.cu_seqlens_k ? p.total_keys : p.total_tokens;
    params.k_map = encode_heads_tensor_map(args.k, p, p.kv_heads, keys, Cfg::kBlockN, "k");
    params.v_map = encode_heads_tensor_map(args.v, p, p.kv_heads, keys, Cfg::kBlockN, "v");
  }
  const dim3 grid(ceil_div(args.problem.max_seqlen, Cfg::kBlockM), args.problem.batch, args.problem.heads);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(params);
  SPK_CHECK_LAUNCH("attention_forward");
}

}  // namespace synthpert::kernels::attn
