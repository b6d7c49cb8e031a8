// Micro-batch tensors for training: inputs, next-token targets and weights.
//
// Targets are shifted inside each example (position t predicts ids[t+1] with
// weight loss_mask[t+1]; an example's last position predicts nothing), so
// packed examples never predict across their boundary.
// Legend: B rows, T tokens per row.
#pragma once

#include <vector>

#include "engine/model.h"
#include "trainer/sft_example.h"

namespace synthpert::trainer {

struct TrainBatch {
  engine::ForwardBatch input;  // ids, positions, valid; segments when packed
  torch::Tensor targets;       // (B, T) int64, 0 where there is no target
  torch::Tensor target_mask;   // (B, T) bool: position has a target that counts
  int64_t tokens = 0;          // real (non-padding) tokens
  int64_t targets_count = 0;   // positions with a counted target
};

// One row per example, right-padded to the longest.
TrainBatch collate_padded(const std::vector<SftExample>& examples,
                          const std::vector<int64_t>& indices);

// Examples packed first-fit (longest first) into rows of at most
// `row_capacity` tokens; each example is its own segment with positions
// restarting at 0, and attention never crosses segments.
TrainBatch collate_packed(const std::vector<SftExample>& examples,
                          const std::vector<int64_t>& indices, int64_t row_capacity);

}  // namespace synthpert::trainer
