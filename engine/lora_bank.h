// Several LoRA adapters attached to one linear layer at once, for serving:
// each row of a batch names the adapter it runs with (or none), so requests
// for different fine-tunes share one forward and one base GEMM.
//
//   y[n] += s_i (x[n] A_i^T) B_i^T,   i = the adapter of token n's row
//
// On CUDA in bf16/f16 this is kernels/lora's gather launch (lora_multi_apply:
// each row reads its own adapter); elsewhere torch math, one
// index_select / two mm / index_add_ per adapter in use. Inference only: the
// update is added into y in place and has no backward.
#pragma once

#include <utility>
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

// Which adapter each token of one forward runs with.
struct AdapterRouting {
  torch::Tensor token_adapter;  // (N) int32 on the device; -1: none
  // The adapters in use, with the indices of their tokens (int64 on the
  // device); built on the host so that no layer waits for the device.
  std::vector<std::pair<int64_t, torch::Tensor>> groups;

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
