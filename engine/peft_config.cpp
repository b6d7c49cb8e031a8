#include "engine/peft_config.h"

#include <cmath>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"

namespace synthpert::engine {

using nlohmann::json;

namespace {

const char* kConfigFile = "adapter_config.json";
const char* kWeightsFile = "adapter_model.safetensors";

// PEFT's LoraConfig default, for a config that leaves lora_alpha out.
constexpr double kPeftDefaultAlpha = 8.0;

const std::vector<std::string>& all_linear_modules() {
  static const std::vector<std::string> m = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                             "gate_proj", "up_proj", "down_proj"};
  return m;
}

}  // namespace

double LoraSpec::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

std::string peft_weights_path(const std::string& dir) { return path_join(dir, kWeightsFile); }
std::string peft_config_path(const std::string& dir) { return path_join(dir, kConfigFile); }

json peft_config_json(const LoraSpec& spec, const std::string& base_model) {
  return {{"peft_type", "LORA"},
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
}

LoraSpec parse_peft_config(const json& j, const std::string& where) {
  SP_CHECK_INPUT(j.is_object() && j.value("peft_type", "") == "LORA", where, ": peft_type must be \"LORA\"");
  SP_CHECK_INPUT(j.contains("r") && j["r"].is_number_integer() && j["r"].get<int64_t>() > 0, where,
                 ": 'r' must be a positive integer");
  LoraSpec s;
  s.r = j["r"].get<int64_t>();
  s.alpha = j.value("lora_alpha", kPeftDefaultAlpha);
  s.dropout = j.value("lora_dropout", 0.0);
  s.rslora = j.value("use_rslora", false);
  // A huge alpha passes JSON as a finite double whose scale overflows the
  // compute dtype; a dropout of 1 or more leaves no adapter input to train.
  SP_CHECK_INPUT(std::isfinite(s.alpha) && std::fabs(s.alpha) <= 1e6, where,
                 ": 'lora_alpha' must be a number of magnitude at most 1e6, got ", s.alpha);
  SP_CHECK_INPUT(s.dropout >= 0 && s.dropout < 1, where, ": 'lora_dropout' must be in [0, 1), got ", s.dropout);
  SP_CHECK_INPUT(!j.value("use_dora", false), where, ": DoRA adapters (use_dora) are not supported");
  SP_CHECK_INPUT(!j.value("fan_in_fan_out", false), where, ": fan_in_fan_out adapters are not supported");
  for (const char* key : {"layers_to_transform", "layers_pattern"})
    SP_CHECK_INPUT(!j.contains(key) || j[key].is_null() || (j[key].is_array() && j[key].empty()), where, ": '", key,
                   "' (an adapter on some layers only) is not supported");
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    SP_CHECK_INPUT(!j.contains(key) || j[key].is_null() || j[key].empty(), where, ": '", key,
                   "' (per-module ranks) is not supported");
  const auto& t = j.value("target_modules", json());
  if (t.is_string() && t.get<std::string>() == "all-linear") {
    s.target_modules = all_linear_modules();
  } else {
    SP_CHECK_INPUT(t.is_array() && !t.empty(), where,
                   ": 'target_modules' must be a non-empty list of module names or \"all-linear\"");
    for (const auto& m : t) {
      SP_CHECK_INPUT(m.is_string() && !m.get<std::string>().empty(), where,
                     ": 'target_modules' entries must be non-empty strings");
      s.target_modules.push_back(m.get<std::string>());
    }
  }
  // PEFT 0.14+: modules matched by target_modules but left out. Its string
  // form is a regular expression, which target_modules' reading refuses too.
  const auto& x = j.value("exclude_modules", json());
  SP_CHECK_INPUT(x.is_null() || x.is_array(), where,
                 ": 'exclude_modules' as a regular expression is not supported; list the module names");
  for (const auto& m : x.is_array() ? x : json::array()) {
    SP_CHECK_INPUT(m.is_string() && !m.get<std::string>().empty(), where,
                   ": 'exclude_modules' entries must be non-empty strings");
    s.exclude_modules.push_back(m.get<std::string>());
  }
  return s;
}

LoraSpec read_peft_config(const std::string& dir) {
  const std::string path = peft_config_path(dir);
  const json j = read_json_input(path);
  return read_json_fields(path, [&] { return parse_peft_config(j, path); });
}

}  // namespace synthpert::engine
