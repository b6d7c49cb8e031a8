#include "engine/peft_adapter.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "common/settings_diff.h"
#include "engine/tensor_io.h"

namespace synthpert::engine {

using nlohmann::json;

namespace {

const char* kConfigFile = "adapter_config.json";
const char* kWeightsFile = "adapter_model.safetensors";
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

double LoraSpec::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

std::string peft_key(const std::string& module, bool is_a) {
  return kPrefix + module + (is_a ? ".lora_A.weight" : ".lora_B.weight");
}

std::string peft_weights_path(const std::string& dir) { return path_join(dir, kWeightsFile); }
std::string peft_config_path(const std::string& dir) { return path_join(dir, kConfigFile); }

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
  save_tensors(path_join(dir, kWeightsFile), tensors, dtype);
  // The fields PEFT's LoraConfig reads; the rest take PEFT's defaults.
  const json cfg = {{"peft_type", "LORA"},
                    {"task_type", "CAUSAL_LM"},
                    {"base_model_name_or_path", base_model},
                    {"r", spec.r},
                    {"lora_alpha", spec.alpha},
                    {"lora_dropout", spec.dropout},
                    {"use_rslora", spec.rslora},
                    {"target_modules", spec.target_modules},
                    {"exclude_modules", spec.exclude_modules.empty() ? json(nullptr) : json(spec.exclude_modules)},
                    {"bias", "none"},
                    {"fan_in_fan_out", false},
                    {"inference_mode", true},
                    {"init_lora_weights", true},
                    {"use_dora", false},
                    {"modules_to_save", nullptr},
                    {"layers_to_transform", nullptr},
                    {"rank_pattern", json::object()},
                    {"alpha_pattern", json::object()}};
  write_file_atomic(path_join(dir, kConfigFile), cfg.dump(2) + "\n");
}

// PEFT's LoraConfig default, for a config that leaves lora_alpha out.
constexpr double kPeftDefaultAlpha = 8.0;

namespace {

LoraSpec peft_config_from_json(const json& j, const std::string& path) {
  SP_CHECK_INPUT(j.is_object() && j.value("peft_type", "") == "LORA", path,
                 ": peft_type must be \"LORA\"");
  SP_CHECK_INPUT(j.contains("r") && j["r"].is_number_integer() && j["r"].get<int64_t>() > 0, path,
                 ": 'r' must be a positive integer");
  LoraSpec s;
  s.r = j["r"].get<int64_t>();
  s.alpha = j.value("lora_alpha", kPeftDefaultAlpha);
  s.dropout = j.value("lora_dropout", 0.0);
  s.rslora = j.value("use_rslora", false);
  SP_CHECK_INPUT(!j.value("use_dora", false), path, ": DoRA adapters (use_dora) are not supported");
  SP_CHECK_INPUT(!j.value("fan_in_fan_out", false), path, ": fan_in_fan_out adapters are not supported");
  for (const char* key : {"layers_to_transform", "layers_pattern"})
    SP_CHECK_INPUT(!j.contains(key) || j[key].is_null() || (j[key].is_array() && j[key].empty()), path, ": '",
                   key, "' (an adapter on some layers only) is not supported");
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    SP_CHECK_INPUT(!j.contains(key) || j[key].is_null() || j[key].empty(), path, ": '", key,
                   "' (per-module ranks) is not supported");
  const auto& t = j.value("target_modules", json());
  if (t.is_string() && t.get<std::string>() == "all-linear") {
    s.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  } else {
    SP_CHECK_INPUT(t.is_array() && !t.empty(), path,
                   ": 'target_modules' must be a non-empty list of module names or \"all-linear\"");
    for (const auto& m : t) {
      SP_CHECK_INPUT(m.is_string(), path, ": 'target_modules' entries must be strings");
      s.target_modules.push_back(m.get<std::string>());
    }
  }
  // PEFT 0.14+: modules matched by target_modules but left out. Its string
  // form is a regular expression, which target_modules' reading refuses too.
  const auto& x = j.value("exclude_modules", json());
  SP_CHECK_INPUT(x.is_null() || x.is_array(), path,
                 ": 'exclude_modules' as a regular expression is not supported; list the module names");
  for (const auto& m : x.is_array() ? x : json::array()) {
    SP_CHECK_INPUT(m.is_string(), path, ": 'exclude_modules' entries must be strings");
    s.exclude_modules.push_back(m.get<std::string>());
  }
  return s;
}

}  // namespace

LoraSpec read_peft_config(const std::string& dir) {
  const std::string path = path_join(dir, kConfigFile);
  const json j = read_json_input(path);
  return read_json_fields(path, [&] { return peft_config_from_json(j, path); });
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
  const std::string wpath = path_join(dir, kWeightsFile);
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
