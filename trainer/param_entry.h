// One trainable tensor of a run and where its fp32 master, gradient and
// optimizer moments sit in the run's flat buffers (see param_set.h).
#pragma once

#include <string>

#include "engine/torch_compat.h"

namespace synthpert::trainer {

struct ParamEntry {
  std::string name;     // PEFT key (LoRA) or Hugging Face tensor name (full)
  torch::Tensor param;  // the model's tensor (requires grad)
  int64_t offset = 0;   // into the flat buffers
  bool decay = true;    // weight decay applies (matrices; not norms or biases)
};

}  // namespace synthpert::trainer
