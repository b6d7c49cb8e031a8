// LoRA targets and initialisation for training.
#pragma once

#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/peft_adapter.h"

namespace synthpert::trainer {

// "q,k,v,o,gate,up,down" (short names, or the Hugging Face module names
// q_proj, ..., down_proj, or "all") -> Hugging Face module names, in the
// canonical order, without duplicates. Unknown names are an InputError.
std::vector<std::string> parse_lora_targets(const std::string& list);

// Attaches a fresh adapter to every targeted Linear, initialised as PEFT
// does: A ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)),
// and B = 0, so training starts from the base model's function. The values
// come from a counter-based generator keyed by (seed, module name): the same
// on every machine. Weights are in the model's dtype and device.
void attach_lora(engine::Transformer& model, const engine::LoraSpec& spec, uint64_t seed);
// The checks attach_lora makes of the spec, before a model is loaded.
void check_lora_spec(const engine::LoraSpec& spec);

}  // namespace synthpert::trainer
