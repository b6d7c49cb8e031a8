// The tolerance rule is achievable by a correct kernel: on every shape of the
// GPU test, a torch model of the attention kernels' rounding points (fp32
// scores/statistics/accumulators, bf16/f16 only for the P and dS mma operands
// and the outputs) stays within the bound the GPU test applies (2x the eager
// torch-in-dtype peer's error, plus the output half-ulp floor). A failure here
// means the bound is too tight for the algorithm, not a kernel bug; the GPU
// test would then fail for the wrong reason. Runs on CPU ([cpu]).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "tests/kernels/test_attention_peer.h"

using namespace synthpert::test;

TEST_CASE("kernel rounding model meets the 2x-peer bound on the GPU test shapes", "[cpu][attention]") {
  at::set_num_threads(1);  // deterministic and polite on shared CI cores
  for (at::ScalarType dt : {at::kBFloat16, at::kHalf}) {
    for (size_t i = 0; i < attention_cases().size(); ++i) {
      const AttentionCase& c = attention_cases()[i];
      for (bool causal : {true, false}) {
        const auto s = shape_of(c, causal);
        const AttentionInputs in = attention_inputs(c, dt, attention_seed(dt == at::kBFloat16, i, causal));
        const auto exact = attention_torch(s, in.q_NHD, in.k_NHD, in.v_NHD, in.dout_NHD, dt, Rounding::kExact);
        const auto peer = attention_torch(s, in.q_NHD, in.k_NHD, in.v_NHD, in.dout_NHD, dt, Rounding::kTorchEager);
        const auto model = attention_torch(s, in.q_NHD, in.k_NHD, in.v_NHD, in.dout_NHD, dt, Rounding::kKernelModel);
        INFO("case " << i << " N=" << s.tokens() << " H=" << c.heads << " Hkv=" << c.kv_heads << " D=" << c.head_dim
                     << " causal=" << causal << " dtype=" << (dt == at::kBFloat16 ? "bf16" : "f16"));
        const double out_floor = half_ulp(dt, max_abs(exact.out_NHD));
        const double grad_floor = half_ulp(
            dt, std::max({max_abs(exact.dq_NHD), max_abs(exact.dk_NHD), max_abs(exact.dv_NHD)}));
        struct Item {
          const char* name;
          const at::Tensor &model, &peer, &exact;
          double floor;
        } items[] = {
            {"out", model.out_NHD, peer.out_NHD, exact.out_NHD, out_floor},
            {"lse", model.lse_HN, peer.lse_HN, exact.lse_HN, half_ulp(dt, max_abs(exact.lse_HN))},
            {"dq", model.dq_NHD, peer.dq_NHD, exact.dq_NHD, grad_floor},
            {"dk", model.dk_NHD, peer.dk_NHD, exact.dk_NHD, grad_floor},
            {"dv", model.dv_NHD, peer.dv_NHD, exact.dv_NHD, grad_floor},
        };
        for (const Item& it : items) {
          const double model_err = max_abs_err(it.model, it.exact), peer_err = max_abs_err(it.peer, it.exact);
          INFO(it.name << ": model err " << model_err << ", peer err " << peer_err << ", bound "
                       << 2 * peer_err + it.floor);
          CHECK(model_err <= 2 * peer_err + it.floor);
        }
        // The bound is not vacuous: the peer really is inexact on multi-token cases.
        if (s.tokens() > 8) CHECK(max_abs_err(peer.out_NHD, exact.out_NHD) > 0.0);
      }
    }
  }
}
