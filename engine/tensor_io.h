// Named torch tensors to and from one safetensors file (adapters, trainer
// checkpoints). Tensors keep their own dtype unless one is asked for.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/safetensors.h"
#include "engine/torch_compat.h"

namespace synthpert::engine {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes atomically (temp + rename); every tensor is copied to the CPU.
void save_tensors(const std::string& path, const NamedTensors& tensors,
                  std::optional<StDType> dtype = std::nullopt,
                  const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Reads every tensor of one file into CPU tensors in their stored dtype.
std::map<std::string, torch::Tensor> load_tensors(const std::string& path);

}  // namespace synthpert::engine
