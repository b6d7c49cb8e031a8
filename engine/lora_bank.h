// Several LoRA adapters attached to one linear layer at once, for serving:
// each row of a batch names the adapter it runs with (or none), so requests
// for different fine-tunes share one forward and one base GEMM.
//
//   y[n] += s_i (x[n] A_i^T) B_i^T,   i = the adapter of token n's row
//
// Two ways to compute it, chosen per adapter by how many tokens use it:
//   * gather (kernels/lora's lora_multi_apply, CUDA in bf16/f16): each token
//     reads its own adapter's A and B. Right for decode, where an adapter has
//     a few rows, and the only launch however many adapters are in use.
//   * dense: index_select of the adapter's tokens, two mm (cuBLAS on CUDA:
//     tensor cores, the adapter read once per tile), index_add_. Right for
//     prefill, where an adapter owns long segments (Punica's SGMV case).
// On CUDA in bf16/f16, adapters with at least kLoraBankDenseTokens tokens go
// dense and the rest through one gather launch; elsewhere all go dense.
// Inference only: the update is added into y in place and has no backward.
#pragma once

#include <vector>

#include "engine/torch_compat.h"

namespace synthpert::engine {

// The adapters of one layer, stacked. Adapters of smaller rank are
// zero-padded to the largest (zero rows of A meet zero columns of B, so the
// padding adds nothing); an adapter that does not target this layer is all
// zeros here.
struct LoraBank {
  torch::Tensor A;                  // (M, R, in) in the model's dtype and device
  torch::Tensor B;                  // (M, out, R)
  torch::Tensor scales;             // (M) float32 on the device (the kernel reads it there)
  std::vector<double> scale_values;  // the same on the host (the torch path)

  int64_t size() const { return A.size(0); }
};

// Tokens of one adapter from which the kernel path computes its update
// dense (two GEMMs) rather than by the per-token gather.
constexpr int64_t kLoraBankDenseTokens = 64;

// The tokens of one adapter in use.
struct AdapterGroup {
  int64_t adapter = 0;
  torch::Tensor tokens;  // their indices, int64 on the device

  bool dense() const { return tokens.size(0) >= kLoraBankDenseTokens; }
};

// Which adapter each token of one forward runs with. Built on the host so
// that no layer waits for the device.
struct AdapterRouting {
  torch::Tensor token_adapter;   // (N) int32 on the device; -1: none
  // The same with the tokens of dense groups set to -1: the gather kernel's
  // rows. Undefined when every group is dense (nothing to gather).
  torch::Tensor gather_adapter;
  std::vector<AdapterGroup> groups;  // in adapter order

  // Row b of a (B, T) batch runs all its T tokens with row_adapter[b], an
  // index into the bank's M adapters or -1. An index outside [-1, M) is an
  // input error naming the row.
  static AdapterRouting for_rows(const std::vector<int64_t>& row_adapter, int64_t tokens_per_row,
                                 int64_t num_adapters, torch::Device device);
};

// y (N, O) += the update of each token's adapter, in place. x (N, K).
void apply_lora_bank(torch::Tensor& y_NO, const torch::Tensor& x_NK, const LoraBank& bank,
                     const AdapterRouting& routing);

}  // namespace synthpert::engine
