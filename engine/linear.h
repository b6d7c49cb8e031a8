// A linear layer y = x W^T + b with an optional LoRA adapter
//   y += scale * dropout(x) A^T B^T        (A: (r, in), B: (out, r))
// and, for serving, an optional bank of adapters of which each row of a
// batch picks one (engine/lora_bank.h).
// The frozen base weight may be held dense or NF4-quantised (QLoRA).
#pragma once

#include <memory>

#include "engine/lora_bank.h"
#include "engine/torch_compat.h"

namespace synthpert::engine {

struct LoraWeights {
  torch::Tensor A;  // (r, in)
  torch::Tensor B;  // (out, r)
  double scale = 1.0;    // alpha / r, or alpha / sqrt(r) with rsLoRA
  double dropout = 0.0;  // applied to the adapter's input while training
};

// Base weight stored as NF4 codes + per-block absmax (see engine/nf4.h).
struct Nf4Weight;

struct Linear {
  torch::Tensor weight;  // (out, in); undefined when nf4 holds the weight
  torch::Tensor bias;    // (out) or undefined
  std::shared_ptr<LoraWeights> lora;
  std::shared_ptr<Nf4Weight> nf4;
  std::shared_ptr<LoraBank> bank;  // serving: per-row adapters, applied when a routing is given

  int64_t out_features() const;
  int64_t in_features() const;
  // Dense base weight (dequantised when stored as NF4).
  torch::Tensor dense_weight() const;
  // x (..., in) -> (..., out). `routing` (one entry per row of x's leading
  // dims flattened) picks each row's adapter from the bank; inference only.
  torch::Tensor forward(const torch::Tensor& x, bool training = false, const AdapterRouting* routing = nullptr) const;

 private:
  // Base weight, bias and the single adapter on (N, in) rows.
  torch::Tensor forward_2d(const torch::Tensor& x_NK, bool training) const;
};

}  // namespace synthpert::engine
