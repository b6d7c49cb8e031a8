// Next-token cross-entropy summed over the counted targets of a micro-batch.
//
// Only the hidden states of positions with a target go through the LM head,
// so the (tokens x vocab) logits are never built for prompt tokens; on CUDA in
// bf16/f16 the fused kernel (engine/linear_cross_entropy.h) never builds them
// at all. The
// trainer divides by the global batch's target count, which makes the loss
// (and gradient) the mean over every assistant token of the global batch no
// matter how it is split into micro-batches and processes.
#pragma once

#include "engine/model.h"
#include "trainer/collate.h"

namespace synthpert::trainer {

// Sum of -log p(target) over the counted targets, float32 scalar.
torch::Tensor sft_loss_sum(const engine::Transformer& model, const TrainBatch& batch,
                           bool training);

}  // namespace synthpert::trainer
