#include "trainer/sft_loss.h"

#include "engine/kernel_launch.h"
#include "engine/linear_cross_entropy.h"

namespace synthpert::trainer {

torch::Tensor sft_loss_sum(const engine::Transformer& model, const TrainBatch& batch,
                           bool training) {
  const auto dev = model.device();
  engine::ForwardBatch in;
  in.ids = batch.input.ids.to(dev);
  in.positions = batch.input.positions.to(dev);
  in.valid = batch.input.valid.to(dev);
  if (batch.input.segments.defined()) in.segments = batch.input.segments.to(dev);
  const auto hidden = model.hidden_states(in, nullptr, training);  // (B, T, C)
  const auto where = batch.target_mask.reshape({-1}).nonzero().squeeze(1).to(dev);
  const auto h = hidden.reshape({-1, hidden.size(-1)}).index_select(0, where);
  const auto targets = batch.targets.reshape({-1}).to(dev).index_select(0, where);
  // On CUDA in bf16/f16: the fused kernel, never holding the (N, V) logits.
  if (engine::kernels_apply(h.device(), h.scalar_type()))
    return engine::linear_cross_entropy_sum(h, model.lm_head, targets);
  const auto logits = model.logits(h);  // (N, V) float32
  const auto logp = torch::log_softmax(logits, -1);
  return -logp.gather(1, targets.unsqueeze(1)).sum();
}

}  // namespace synthpert::trainer
