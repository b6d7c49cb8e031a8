#include "engine/peft_adapter.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "common/settings_diff.h"
#include "engine/tensor_io.h"

namespace synthpert::engine {

using nlohmann::json;

namespace {

const std::string kPrefix = "base_model.model.";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// PEFT's rule for a list of targets: a module is targeted when its full
// name is one of them or ends with "." + one ("q_proj", "self_attn.q_proj").
bool is_targeted(const std::string& module, const std::vector<std::string>& targets) {
  for (const auto& t : targets)
    if (t == module || ends_with(module, "." + t)) return true;
  return false;
}

}  // namespace

std::string peft_key(const std::string& module, bool is_a) {
  return kPrefix + module + (is_a ? ".lora_A.weight" : ".lora_B.weight");
}

void save_peft_adapter(const std::string& dir, Transformer& model, const LoraSpec& spec,
                       const std::string& base_model, StDType dtype) {
  NamedTensors tensors;
  for (auto& [name, lin] : model.named_linears()) {
    if (!lin->lora) continue;
    tensors.emplace_back(peft_key(name, true), lin->lora->A);
    tensors.emplace_back(peft_key(name, false), lin->lora->B);
  }
  SP_CHECK_INPUT(!tensors.empty(), dir, ": the model has no LoRA adapter to save");
  make_dirs(dir);
  save_tensors(peft_weights_path(dir), tensors, dtype);
  write_file_atomic(peft_config_path(dir), peft_config_json(spec, base_model).dump(2) + "\n");
}

namespace {

// One targeted module of the model and its adapter matrices as read.
struct ModuleLora {
  Linear* linear = nullptr;
  torch::Tensor A, B;
};

// An adapter folder's config and its matrices per targeted module, checked
// against the model: every tensor names a module of the model with the right
// shape, and every module the config targets has both matrices.
struct AdapterTensors {
  LoraSpec spec;
  std::map<std::string, ModuleLora> modules;  // by module name
};

AdapterTensors read_peft_adapter(const std::string& dir, Transformer& model,
                                 std::map<std::string, torch::Tensor>* file_tensors = nullptr) {
  AdapterTensors out;
  out.spec = read_peft_config(dir);
  const LoraSpec& spec = out.spec;
  const std::string wpath = peft_weights_path(dir);
  auto tensors = load_tensors(wpath);
  std::map<std::string, Linear*> modules;
  for (auto& [name, lin] : model.named_linears()) modules[name] = lin;

  std::set<std::string> used;
  for (const auto& [key, t] : tensors) {
    const std::string suffix = ".lora_A.weight";  // same length as ".lora_B.weight"
    const bool a = ends_with(key, suffix), b = ends_with(key, ".lora_B.weight");
    SP_CHECK_INPUT(key.rfind(kPrefix, 0) == 0 && (a || b), wpath, ": tensor '", key,
                   "' is not a PEFT LoRA key (base_model.model.<module>.lora_A|lora_B.weight)");
    const std::string module = key.substr(kPrefix.size(), key.size() - kPrefix.size() - suffix.size());
    SP_CHECK_INPUT(modules.count(module), wpath, ": tensor '", key, "' names module '", module,
                   "', which this model does not have");
    used.insert(module);
  }
  for (auto& [name, lin] : modules) {
    if (!is_targeted(name, spec.target_modules) || is_targeted(name, spec.exclude_modules)) {
      SP_CHECK_INPUT(!used.count(name), wpath, ": module '", name,
                     "' has LoRA weights but is not in target_modules (or is in exclude_modules)");
      continue;
    }
    const std::string ka = peft_key(name, true), kb = peft_key(name, false);
    SP_CHECK_INPUT(tensors.count(ka) && tensors.count(kb), wpath, ": missing '",
                   tensors.count(ka) ? kb : ka, "' for targeted module '", name, "'");
    const auto& A = tensors[ka];
    const auto& B = tensors[kb];
    SP_CHECK_INPUT(A.dim() == 2 && A.size(0) == spec.r && A.size(1) == lin->in_features(), wpath,
                   ": '", ka, "' has shape ", A.sizes(), ", expected [", spec.r, ", ",
                   lin->in_features(), "]");
    SP_CHECK_INPUT(B.dim() == 2 && B.size(0) == lin->out_features() && B.size(1) == spec.r, wpath,
                   ": '", kb, "' has shape ", B.sizes(), ", expected [", lin->out_features(), ", ",
                   spec.r, "]");
    out.modules[name] = {lin, A, B};
  }
  if (file_tensors) *file_tensors = std::move(tensors);
  return out;
}

}  // namespace

LoraSpec load_peft_adapter(const std::string& dir, Transformer& model,
                           std::map<std::string, torch::Tensor>* file_tensors) {
  const auto adapter = read_peft_adapter(dir, model, file_tensors);
  for (const auto& [name, m] : adapter.modules) {
    auto w = std::make_shared<LoraWeights>();
    w->A = m.A.to(model.device(), model.dtype());
    w->B = m.B.to(model.device(), model.dtype());
    w->scale = adapter.spec.scale();
    w->dropout = adapter.spec.dropout;
    m.linear->lora = w;
  }
  return adapter.spec;
}

nlohmann::json peft_adapter_digests(const std::string& dir) {
  return {{"config", content_digest(read_file(peft_config_path(dir)))},
          {"weights", content_digest(read_file(peft_weights_path(dir)))}};
}

std::vector<LoraSpec> load_peft_adapter_bank(const std::vector<std::pair<std::string, std::string>>& named_dirs,
                                             Transformer& model) {
  SP_CHECK_INPUT(!named_dirs.empty(), "no adapters given");
  SP_CHECK_INPUT(model.adapter_names.empty(), "the model already holds an adapter bank (",
                 model.adapter_names.size(), " adapters)");
  std::set<std::string> names;
  std::vector<AdapterTensors> adapters;
  int64_t rank = 0;
  for (const auto& [name, dir] : named_dirs) {
    SP_CHECK_INPUT(!name.empty(), dir, ": the adapter needs a name");
    SP_CHECK_INPUT(names.insert(name).second, "two adapters are named '", name, "'");
    adapters.push_back(read_peft_adapter(dir, model));
    rank = std::max(rank, adapters.back().spec.r);
  }
  // A rank of a multiple of 8 lets the serving kernel load B's rows 16 bytes
  // at a time; the padding is zeros and adds nothing.
  rank = (rank + 7) / 8 * 8;
  const int64_t M = static_cast<int64_t>(adapters.size());
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  for (auto& [module, lin] : model.named_linears()) {
    bool targeted = false;
    for (const auto& a : adapters) targeted = targeted || a.modules.count(module);
    if (!targeted) continue;
    auto bank = std::make_shared<LoraBank>();
    auto A = torch::zeros({M, rank, lin->in_features()}, f32);
    auto B = torch::zeros({M, lin->out_features(), rank}, f32);
    for (int64_t i = 0; i < M; ++i) {
      const auto& a = adapters[static_cast<size_t>(i)];
      bank->scale_values.push_back(a.spec.scale());
      const auto it = a.modules.find(module);
      if (it == a.modules.end()) continue;
      A[i].narrow(0, 0, a.spec.r).copy_(it->second.A);
      B[i].narrow(1, 0, a.spec.r).copy_(it->second.B);
    }
    bank->A = A.to(model.device(), model.dtype());
    bank->B = B.to(model.device(), model.dtype());
    bank->scales = torch::tensor(bank->scale_values, f32).to(model.device());
    lin->bank = bank;
  }
  std::vector<LoraSpec> specs;
  for (const auto& [name, dir] : named_dirs) model.adapter_names.push_back(name);
  for (const auto& a : adapters) specs.push_back(a.spec);
  return specs;
}

}  // namespace synthpert::engine
