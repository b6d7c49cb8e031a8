// The trainable parameters of a run, with fp32 master copies.
//
// The model keeps its parameters in the compute dtype (what the forward
// uses); the optimizer updates one flat float32 master buffer and writes the
// result back (a cast for bf16/fp16, a copy for fp32). Gradients are summed
// in a flat float32 buffer after every micro-batch, so accumulation and the
// data-parallel all-reduce never happen in bf16.
#pragma once

#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/tensor_io.h"
#include "trainer/param_entry.h"

namespace synthpert::trainer {

class ParamSet {
 public:
  // Every LoRA A and B of the model, under PEFT key names.
  static ParamSet lora(engine::Transformer& model);
  // Every weight of the model (full fine-tuning); NF4 weights are refused.
  static ParamSet full(engine::Transformer& model);

  const std::vector<ParamEntry>& entries() const { return entries_; }
  int64_t numel() const { return master_.numel(); }

  torch::Tensor& master() { return master_; }  // (numel) float32
  const torch::Tensor& master() const { return master_; }
  torch::Tensor& grad() { return grad_; }      // (numel) float32
  const torch::Tensor& grad() const { return grad_; }
  // 1 where weight decay applies, else 0 (numel) float32.
  const torch::Tensor& decay_mask() const { return decay_mask_; }

  // Adds the parameters' .grad into the flat buffer and clears them.
  void accumulate_grads();
  void zero_grad() { grad_.zero_(); }
  // Copies the masters into the model's parameters.
  void write_back();
  // Per-parameter views of a flat buffer (for checkpoints and tests).
  engine::NamedTensors views(const torch::Tensor& flat) const;
  // Loads per-parameter tensors into a flat buffer; names and shapes must match.
  void load_views(torch::Tensor& flat, const std::map<std::string, torch::Tensor>& tensors,
                  const std::string& source) const;

 private:
  void build(std::vector<ParamEntry> entries, torch::Device device);

  std::vector<ParamEntry> entries_;
  torch::Tensor master_, grad_, decay_mask_;
};

// Clips the flat gradient to a global L2 norm of at most `max_norm` (as
// torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that
// is below 1). Returns the norm before clipping. max_norm <= 0: no clipping.
double clip_grad_norm(torch::Tensor& grad, double max_norm);

}  // namespace synthpert::trainer
