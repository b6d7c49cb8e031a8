// LoRA adapters in PEFT's file format, so adapters trained here load in PEFT
// and adapters trained with PEFT load here:
//   DIR/adapter_config.json        {"peft_type":"LORA","r","lora_alpha","lora_dropout",
//                                   "target_modules":[...],"use_rslora",...}
//   DIR/adapter_model.safetensors  base_model.model.<module>.lora_A.weight  (r, in)
//                                  base_model.model.<module>.lora_B.weight  (out, r)
// where <module> is the Hugging Face module name, e.g. model.layers.0.self_attn.q_proj.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"
#include "engine/peft_config.h"

namespace synthpert::engine {

// The PEFT tensor name of a module's A or B matrix.
std::string peft_key(const std::string& module, bool is_a);
// Writes adapter_config.json and adapter_model.safetensors for every Linear of
// `model` that holds a LoRA adapter. `base_model` goes into the config's
// base_model_name_or_path.
void save_peft_adapter(const std::string& dir, Transformer& model, const LoraSpec& spec,
                       const std::string& base_model, StDType dtype = StDType::F32);

// Attaches the adapter in DIR to `model` (weights in the model's dtype and
// device). Every tensor must name a module of the model with the right shape,
// and every module the config targets must have both matrices. With
// `file_tensors`, also hands back the tensors as the file holds them (its
// dtype, on the CPU): the trainer starts its float32 masters from them
// instead of reading the file a second time.
LoraSpec load_peft_adapter(const std::string& dir, Transformer& model,
                           std::map<std::string, torch::Tensor>* file_tensors = nullptr);

// The adapter in DIR by content, {"config": digest, "weights": digest} of
// its two files, for the records that must tell a folder rewritten between
// two runs from the same one: a resumed evaluation, a resumed training run
// started from it.
nlohmann::json peft_adapter_digests(const std::string& dir);

// Serving: attaches several adapters at once as banks (engine/lora_bank.h)
// under the given names, in order (model.adapter_names; a batch row picks
// one by index). Each folder is checked as load_peft_adapter checks it; the
// adapters may differ in rank, scale and target modules. Returns their specs.
std::vector<LoraSpec> load_peft_adapter_bank(const std::vector<std::pair<std::string, std::string>>& named_dirs,
                                             Transformer& model);

}  // namespace synthpert::engine
