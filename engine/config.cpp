#include "engine/config.h"

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"

namespace synthpert::engine {

using nlohmann::json;

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::kLlama: return "llama";
    case Arch::kQwen2: return "qwen2";
    case Arch::kQwen3: return "qwen3";
    case Arch::kMistral: return "mistral";
  }
  return "?";
}

Arch parse_arch(const std::string& name) {
  if (name == "llama") return Arch::kLlama;
  if (name == "qwen2") return Arch::kQwen2;
  if (name == "qwen3") return Arch::kQwen3;
  if (name == "mistral") return Arch::kMistral;
  throw InputError(str_cat("unknown architecture '", name,
                           "' (supported: llama, qwen2, qwen3, mistral)"));
}

namespace {

// Defaults of transformers' MistralConfig and Qwen2Config/Qwen3Config, for
// keys a config.json leaves out.
constexpr int64_t kMistralDefaultSlidingWindow = 4096;
constexpr int64_t kQwenDefaultSlidingWindow = 4096;
constexpr int64_t kQwenDefaultMaxWindowLayers = 28;

Arch detect_arch(const json& j, const std::string& src) {
  if (j.contains("model_type") && j["model_type"].is_string()) {
    const std::string mt = j["model_type"];
    try {
      return parse_arch(mt);
    } catch (const InputError&) {
      throw InputError(str_cat(src, ": model_type '", mt,
                               "' is not supported (llama, qwen2, qwen3, mistral)"));
    }
  }
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    SP_CHECK_INPUT(j["architectures"][0].is_string(), src, ": 'architectures' must list strings");
    const std::string a = j["architectures"][0].get<std::string>();
    if (a == "LlamaForCausalLM") return Arch::kLlama;
    if (a == "Qwen2ForCausalLM") return Arch::kQwen2;
    if (a == "Qwen3ForCausalLM") return Arch::kQwen3;
    if (a == "MistralForCausalLM") return Arch::kMistral;
    throw InputError(str_cat(src, ": architecture '", a, "' is not supported"));
  }
  throw InputError(str_cat(src, ": missing key 'model_type' (and no 'architectures')"));
}

int64_t get_int(const json& j, const char* key, const std::string& src) {
  SP_CHECK_INPUT(j.contains(key), src, ": missing key '", key, "'");
  SP_CHECK_INPUT(j[key].is_number_integer(), src, ": key '", key, "' must be an integer");
  const int64_t v = j[key].get<int64_t>();
  SP_CHECK_INPUT(v > 0, src, ": key '", key, "' must be positive, got ", v);
  return v;
}

int64_t get_int_or(const json& j, const char* key, int64_t fallback, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  SP_CHECK_INPUT(j[key].is_number_integer(), src, ": key '", key, "' must be an integer");
  return j[key].get<int64_t>();
}

double get_num_or(const json& j, const char* key, double fallback, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  SP_CHECK_INPUT(j[key].is_number(), src, ": key '", key, "' must be a number");
  return j[key].get<double>();
}

bool get_bool_or(const json& j, const char* key, bool fallback, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  SP_CHECK_INPUT(j[key].is_boolean(), src, ": key '", key, "' must be true or false");
  return j[key].get<bool>();
}

// The scaling described by `s` (`key` names it in messages): transformers
// 4.x's "rope_scaling" object, or 5.x's "rope_parameters", which also holds
// the theta.
RopeScaling parse_rope_scaling(const json& s, const char* key, const std::string& src) {
  RopeScaling r;
  SP_CHECK_INPUT(s.is_object(), src, ": '", key, "' must be an object or null");
  const char* type_key = s.contains("rope_type") ? "rope_type" : "type";
  SP_CHECK_INPUT(s.contains(type_key), src, ": ", key, " needs 'rope_type' (or 'type')");
  SP_CHECK_INPUT(s[type_key].is_string(), src, ": ", key, ".", type_key, " must be a string");
  const std::string type = s[type_key].get<std::string>();
  const std::string ctx = src + ": " + key;
  if (type == "default") return r;
  if (type == "linear") {
    r.type = type;
    r.factor = get_num_or(s, "factor", 0.0, ctx);
    SP_CHECK_INPUT(r.factor > 0, ctx, ": 'factor' must be positive");
    return r;
  }
  if (type == "llama3") {
    r.type = type;
    r.factor = get_num_or(s, "factor", 0.0, ctx);
    r.low_freq_factor = get_num_or(s, "low_freq_factor", 0.0, ctx);
    r.high_freq_factor = get_num_or(s, "high_freq_factor", 0.0, ctx);
    r.original_max_position_embeddings = get_int(s, "original_max_position_embeddings", ctx);
    SP_CHECK_INPUT(r.factor > 0 && r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor,
                   ctx, ": llama3 scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0");
    return r;
  }
  throw InputError(str_cat(ctx, ": rope type '", type,
                           "' is not supported (default, linear, llama3)"));
}

// An absent "sliding_window" is the config class's default; null is no
// window (as Mistral v0.2 on writes it).
int64_t window_or_default(const json& j, int64_t fallback, const std::string& src) {
  return j.contains("sliding_window") ? get_int_or(j, "sliding_window", 0, src) : fallback;
}

// rope_theta and rope_scaling from either config layout. transformers 5
// writes {"rope_parameters": {"rope_type", "rope_theta", "factor", ...}} and
// may leave out the top-level keys 4.x wrote; a config holding both layouts
// must not disagree.
void parse_rope(const json& j, const std::string& src, ModelConfig& c) {
  c.rope_theta = get_num_or(j, "rope_theta", 10000.0, src);
  const bool has_scaling = j.contains("rope_scaling") && !j["rope_scaling"].is_null();
  if (has_scaling) c.rope_scaling = parse_rope_scaling(j["rope_scaling"], "rope_scaling", src);
  if (!j.contains("rope_parameters") || j["rope_parameters"].is_null()) return;
  const json& p = j["rope_parameters"];
  const RopeScaling scaling = parse_rope_scaling(p, "rope_parameters", src);
  const double theta = get_num_or(p, "rope_theta", c.rope_theta, src + ": rope_parameters");
  SP_CHECK_INPUT(!j.contains("rope_theta") || j["rope_theta"].is_null() || theta == c.rope_theta, src,
                 ": rope_theta (", c.rope_theta, ") and rope_parameters.rope_theta (", theta, ") disagree");
  const RopeScaling& s = c.rope_scaling;
  SP_CHECK_INPUT(!has_scaling || (s.type == scaling.type && s.factor == scaling.factor &&
                                  s.low_freq_factor == scaling.low_freq_factor &&
                                  s.high_freq_factor == scaling.high_freq_factor &&
                                  s.original_max_position_embeddings == scaling.original_max_position_embeddings),
                 src, ": rope_scaling and rope_parameters describe different RoPE scalings");
  c.rope_theta = theta;
  c.rope_scaling = scaling;
}

std::vector<int64_t> parse_eos(const json& j, const std::string& src) {
  std::vector<int64_t> out;
  if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) return out;
  const json& e = j["eos_token_id"];
  const auto add = [&](const json& v) {
    SP_CHECK_INPUT(v.is_number_integer(), src, ": eos_token_id must be an integer or a list of integers");
    out.push_back(v.get<int64_t>());
  };
  if (e.is_array()) {
    for (const auto& v : e) add(v);
  } else {
    add(e);
  }
  return out;
}

}  // namespace

int64_t ModelConfig::num_parameters() const {
  const int64_t C = hidden_size;
  int64_t attn = C * q_dim() + 2 * C * kv_dim() + q_dim() * C;
  if (attention_bias) attn += q_dim() + 2 * kv_dim();
  if (o_proj_bias) attn += C;
  if (qk_norm) attn += 2 * head_dim;
  int64_t mlp = 3 * C * intermediate_size;
  if (mlp_bias) mlp += 2 * intermediate_size + C;
  const int64_t layer = attn + mlp + 2 * C;
  const int64_t embed = vocab_size * C * (tie_word_embeddings ? 1 : 2);
  return num_hidden_layers * layer + embed + C;
}

// transformers (4.53+) takes an explicit layer_types over the rule derived
// from max_window_layers. This engine holds the rule only, so a list that
// disagrees with it would window the wrong layers: refused, naming a layer.
void check_layer_types(const json& j, const ModelConfig& c, const std::string& src) {
  if (!j.contains("layer_types") || j["layer_types"].is_null()) return;
  const json& types = j["layer_types"];
  SP_CHECK_INPUT(types.is_array() && static_cast<int64_t>(types.size()) == c.num_hidden_layers, src,
                 ": layer_types must list one type per layer (", c.num_hidden_layers, ")");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const json& t = types[static_cast<size_t>(i)];
    SP_CHECK_INPUT(t == "full_attention" || t == "sliding_attention", src, ": layer_types[", i, "] is ", t.dump(),
                   " (supported: full_attention, sliding_attention)");
    // A sliding layer without a window (use_sliding_window false) is full.
    const bool sliding = t == "sliding_attention" && c.sliding_window > 0;
    SP_CHECK_INPUT(sliding == (c.layer_window(i) > 0), src, ": layer_types[", i, "] is ", t.dump(),
                   " but max_window_layers (", c.max_window_layers, ") and sliding_window (", c.sliding_window,
                   ") give it ", c.layer_window(i) > 0 ? "sliding" : "full",
                   " attention; a per-layer pattern other than that rule is not supported");
  }
}

namespace {

ModelConfig parse_config_fields(const json& j, const std::string& src) {
  SP_CHECK_INPUT(j.is_object(), src, ": expected a JSON object");
  ModelConfig c;
  c.arch = detect_arch(j, src);
  c.vocab_size = get_int(j, "vocab_size", src);
  c.hidden_size = get_int(j, "hidden_size", src);
  c.intermediate_size = get_int(j, "intermediate_size", src);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", src);
  c.num_attention_heads = get_int(j, "num_attention_heads", src);
  // An absent key takes the config class's default; null means "as many as
  // the query heads" in all four (transformers' __init__ rule).
  const bool kv_absent = !j.contains("num_key_value_heads");
  const int64_t kv_class_default = c.arch == Arch::kMistral ? 8
                                   : c.arch == Arch::kLlama ? c.num_attention_heads
                                                            : 32;  // Qwen2Config, Qwen3Config
  c.num_key_value_heads =
      get_int_or(j, "num_key_value_heads", kv_absent ? kv_class_default : c.num_attention_heads, src);
  SP_CHECK_INPUT(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0,
                 src, ": num_attention_heads (", c.num_attention_heads,
                 ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")");
  // Qwen3Config's own default is 128, not hidden / heads (Qwen3 models have
  // more query width than hidden size); the others derive it.
  const bool fixed_default = c.arch == Arch::kQwen3;
  const int64_t default_head_dim = fixed_default ? 128 : c.hidden_size / c.num_attention_heads;
  c.head_dim = get_int_or(j, "head_dim", default_head_dim, src);
  if (!fixed_default && (!j.contains("head_dim") || j["head_dim"].is_null()))
    SP_CHECK_INPUT(c.hidden_size % c.num_attention_heads == 0, src,
                   ": hidden_size (", c.hidden_size, ") must be divisible by num_attention_heads (",
                   c.num_attention_heads, ") when head_dim is not given");
  SP_CHECK_INPUT(c.head_dim > 0 && c.head_dim % 2 == 0, src,
                 ": head_dim must be positive and even for RoPE, got ", c.head_dim);
  const int64_t context_class_default = c.arch == Arch::kMistral ? 131072
                                        : c.arch == Arch::kLlama   ? 2048
                                                                   : 32768;  // Qwen2Config, Qwen3Config
  c.max_position_embeddings = get_int_or(j, "max_position_embeddings", context_class_default, src);
  c.rms_norm_eps = get_num_or(j, "rms_norm_eps", 1e-6, src);
  parse_rope(j, src, c);
  SP_CHECK_INPUT(c.rope_theta > 0, src, ": rope_theta must be positive, got ", c.rope_theta);
  // The MLP is SwiGLU with SiLU ("swish" is transformers' other name for it);
  // another activation would load and compute the wrong function.
  if (j.contains("hidden_act") && !j["hidden_act"].is_null()) {
    const json& act = j["hidden_act"];
    SP_CHECK_INPUT(act.is_string() && (act == "silu" || act == "swish"), src, ": hidden_act ", act.dump(),
                   " is not supported (silu)");
  }
  c.tie_word_embeddings = get_bool_or(j, "tie_word_embeddings", false, src);
  c.initializer_range = get_num_or(j, "initializer_range", 0.02, src);
  c.bos_token_id = get_int_or(j, "bos_token_id", -1, src);
  c.eos_token_ids = parse_eos(j, src);
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"];

  switch (c.arch) {
    case Arch::kLlama:
      c.attention_bias = get_bool_or(j, "attention_bias", false, src);
      c.o_proj_bias = c.attention_bias;
      c.mlp_bias = get_bool_or(j, "mlp_bias", false, src);
      break;
    case Arch::kQwen2:
      // Qwen2 always has q/k/v biases and none on o_proj.
      c.attention_bias = true;
      if (get_bool_or(j, "use_sliding_window", false, src)) {
        c.sliding_window = window_or_default(j, kQwenDefaultSlidingWindow, src);
        c.max_window_layers = get_int_or(j, "max_window_layers", kQwenDefaultMaxWindowLayers, src);
      }
      break;
    case Arch::kQwen3:
      c.attention_bias = get_bool_or(j, "attention_bias", false, src);
      c.o_proj_bias = c.attention_bias;
      c.qk_norm = true;
      if (get_bool_or(j, "use_sliding_window", false, src)) {
        c.sliding_window = window_or_default(j, kQwenDefaultSlidingWindow, src);
        c.max_window_layers = get_int_or(j, "max_window_layers", kQwenDefaultMaxWindowLayers, src);
      }
      break;
    case Arch::kMistral:
      c.sliding_window = window_or_default(j, kMistralDefaultSlidingWindow, src);
      break;
  }
  SP_CHECK_INPUT(c.sliding_window >= 0, src, ": sliding_window must be >= 0 or null");
  check_layer_types(j, c, src);
  return c;
}

}  // namespace

ModelConfig parse_config(const json& j, const std::string& src) {
  return read_json_fields(src, [&] { return parse_config_fields(j, src); });
}

ModelConfig load_config(const std::string& model_dir) {
  const std::string path = path_join(model_dir, "config.json");
  SP_CHECK_INPUT(path_exists(path), path, ": not found (is '", model_dir,
                 "' a Hugging Face model folder?)");
  return parse_config(read_json_input(path), path);
}

json to_hf_json(const ModelConfig& c) {
  json j;
  j["model_type"] = arch_name(c.arch);
  switch (c.arch) {
    case Arch::kLlama: j["architectures"] = {"LlamaForCausalLM"}; break;
    case Arch::kQwen2: j["architectures"] = {"Qwen2ForCausalLM"}; break;
    case Arch::kQwen3: j["architectures"] = {"Qwen3ForCausalLM"}; break;
    case Arch::kMistral: j["architectures"] = {"MistralForCausalLM"}; break;
  }
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == "default") {
    j["rope_scaling"] = nullptr;
  } else {
    json s;
    s["rope_type"] = c.rope_scaling.type;
    s["factor"] = c.rope_scaling.factor;
    if (c.rope_scaling.type == "llama3") {
      s["low_freq_factor"] = c.rope_scaling.low_freq_factor;
      s["high_freq_factor"] = c.rope_scaling.high_freq_factor;
      s["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = s;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["hidden_act"] = "silu";
  j["attention_dropout"] = 0.0;
  j["use_cache"] = true;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = c.torch_dtype;
  switch (c.arch) {
    case Arch::kLlama:
      j["attention_bias"] = c.attention_bias;
      j["mlp_bias"] = c.mlp_bias;
      j["pretraining_tp"] = 1;
      break;
    case Arch::kQwen2:
    case Arch::kQwen3:
      if (c.arch == Arch::kQwen3) j["attention_bias"] = c.attention_bias;
      j["use_sliding_window"] = c.sliding_window > 0;
      j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
      j["max_window_layers"] = c.sliding_window > 0 ? c.max_window_layers : c.num_hidden_layers;
      break;
    case Arch::kMistral:
      j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
      break;
  }
  return j;
}

}  // namespace synthpert::engine
