#include "engine/init_model.h"

#include <cmath>
#include <cstring>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "common/hash.h"
#include "engine/model.h"

namespace synthpert::engine {

namespace {

uint64_t hash_name(const std::string& s) { return fnv1a64(s); }

// Standard normal for element `i` of the stream `key` (Box-Muller on two
// independent uniforms in (0, 1]).
float normal_at(uint64_t key, uint64_t i) {
  const uint64_t a = splitmix64(key ^ (2 * i));
  const uint64_t b = splitmix64(key ^ (2 * i + 1));
  const double u1 = ((a >> 11) + 1) * (1.0 / 9007199254740992.0);
  const double u2 = (b >> 11) * (1.0 / 9007199254740992.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2));
}

uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;  // NaN
  u += 0x7fff + ((u >> 16) & 1);                       // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

enum class Init { kNormal, kOnes, kZeros };

// Far past any checkpoint this writes (a 405B model has 2^38.6).
constexpr int64_t kMaxParameters = int64_t{1} << 40;

}  // namespace

std::vector<std::string> preset_names() { return {"tiny", "small", "llama3-1b", "llama3-8b"}; }

ModelConfig preset_config(Arch arch, const std::string& preset) {
  ModelConfig c;
  c.arch = arch;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  if (preset == "tiny" || preset == "small") {
    const bool tiny = preset == "tiny";
    c.vocab_size = tiny ? 512 : 4096;
    c.hidden_size = tiny ? 64 : 256;
    c.intermediate_size = tiny ? 176 : 688;
    c.num_hidden_layers = tiny ? 2 : 6;
    c.num_attention_heads = tiny ? 4 : 8;
    c.num_key_value_heads = tiny ? 2 : 4;
    c.head_dim = c.hidden_size / c.num_attention_heads;
    c.max_position_embeddings = 2048;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = true;
    if (arch == Arch::kQwen2) c.attention_bias = true;
    if (arch == Arch::kQwen3) c.qk_norm = true;
    return c;
  }
  SP_CHECK_INPUT(arch == Arch::kLlama, "preset '", preset, "' is a llama shape; use --arch llama");
  c.vocab_size = 128256;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001, 128008, 128009};
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  c.torch_dtype = "bfloat16";
  if (preset == "llama3-1b") {
    c.hidden_size = 2048;
    c.intermediate_size = 8192;
    c.num_hidden_layers = 16;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 8;
    c.head_dim = 64;
    c.rope_scaling.factor = 32.0;
    c.tie_word_embeddings = true;
    return c;
  }
  if (preset == "llama3-8b") {
    c.hidden_size = 4096;
    c.intermediate_size = 14336;
    c.num_hidden_layers = 32;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 8;
    c.head_dim = 128;
    c.rope_scaling.factor = 8.0;
    c.tie_word_embeddings = false;
    return c;
  }
  throw InputError(str_cat("unknown preset '", preset, "' (tiny, small, llama3-1b, llama3-8b)"));
}

int64_t init_model(const ModelConfig& c, const std::string& out_dir, const InitOptions& opts) {
  SP_CHECK_INPUT(opts.dtype == StDType::F32 || opts.dtype == StDType::BF16 ||
                     opts.dtype == StDType::F16,
                 "init-model writes f32, f16 or bf16 weights");
  struct Entry {
    TensorSpec spec;
    Init init;
  };
  std::vector<Entry> entries;
  const int64_t C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, Init init) {
    entries.push_back({{name, opts.dtype, std::move(shape)}, init});
  };
  const Init norm = opts.jitter ? Init::kNormal : Init::kOnes;
  const Init bias = opts.jitter ? Init::kNormal : Init::kZeros;
  add("model.embed_tokens.weight", {V, C}, Init::kNormal);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    add(p + ".input_layernorm.weight", {C}, norm);
    add(p + ".post_attention_layernorm.weight", {C}, norm);
    add(p + ".self_attn.q_proj.weight", {c.q_dim(), C}, Init::kNormal);
    add(p + ".self_attn.k_proj.weight", {c.kv_dim(), C}, Init::kNormal);
    add(p + ".self_attn.v_proj.weight", {c.kv_dim(), C}, Init::kNormal);
    add(p + ".self_attn.o_proj.weight", {C, c.q_dim()}, Init::kNormal);
    if (c.attention_bias) {
      add(p + ".self_attn.q_proj.bias", {c.q_dim()}, bias);
      add(p + ".self_attn.k_proj.bias", {c.kv_dim()}, bias);
      add(p + ".self_attn.v_proj.bias", {c.kv_dim()}, bias);
    }
    if (c.o_proj_bias) add(p + ".self_attn.o_proj.bias", {C}, bias);
    if (c.qk_norm) {
      add(p + ".self_attn.q_norm.weight", {c.head_dim}, norm);
      add(p + ".self_attn.k_norm.weight", {c.head_dim}, norm);
    }
    add(p + ".mlp.gate_proj.weight", {I, C}, Init::kNormal);
    add(p + ".mlp.up_proj.weight", {I, C}, Init::kNormal);
    add(p + ".mlp.down_proj.weight", {C, I}, Init::kNormal);
    if (c.mlp_bias) {
      add(p + ".mlp.gate_proj.bias", {I}, bias);
      add(p + ".mlp.up_proj.bias", {I}, bias);
      add(p + ".mlp.down_proj.bias", {C}, bias);
    }
  }
  add("model.norm.weight", {C}, norm);
  if (!c.tie_word_embeddings) add("lm_head.weight", {V, C}, Init::kNormal);

  std::vector<TensorSpec> specs;
  int64_t params = 0;
  for (const auto& e : entries) {
    specs.push_back(e.spec);
    // A mistyped size must not wrap around into a small, plausible count.
    int64_t n = 1;
    bool overflow = false;
    for (auto d : e.spec.shape) overflow |= __builtin_mul_overflow(n, d, &n);
    overflow |= __builtin_add_overflow(params, n, &params);
    SP_CHECK_INPUT(!overflow && params <= kMaxParameters, "vocab_size ", V, ", hidden_size ", C,
                   ", intermediate_size ", I, " and ", c.num_hidden_layers, " layers make more than 2^40 parameters");
  }
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  auto fill = [&](const TensorSpec& spec, uint8_t* out) {
    Init init = Init::kNormal;
    for (const auto& e : entries)
      if (e.spec.name == spec.name) init = e.init;
    int64_t n = 1;
    for (auto d : spec.shape) n *= d;
    const uint64_t key = splitmix64(opts.seed) ^ hash_name(spec.name);
    const bool is_norm = spec.name.find("norm") != std::string::npos;
    const float std_dev = static_cast<float>(c.initializer_range);
    auto value = [&](int64_t i) -> float {
      switch (init) {
        case Init::kOnes: return 1.0f;
        case Init::kZeros: return 0.0f;
        case Init::kNormal:
          // Jittered norms stay near 1 so activations keep their scale.
          return is_norm ? 1.0f + 0.1f * normal_at(key, i) : std_dev * normal_at(key, i);
      }
      return 0.0f;
    };
    auto work = [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const float v = value(i);
        if (spec.dtype == StDType::F32) std::memcpy(out + 4 * i, &v, 4);
        else if (spec.dtype == StDType::BF16) {
          const uint16_t b = float_to_bf16(v);
          std::memcpy(out + 2 * i, &b, 2);
        }
      }
    };
    if (spec.dtype == StDType::F16) {
      // Rare path: convert through libtorch in one go.
      auto t = torch::empty({n}, torch::kFloat32);
      float* p = t.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) p[i] = value(i);
      auto h = t.to(torch::kFloat16);
      std::memcpy(out, h.data_ptr(), 2 * n);
      return;
    }
    if (n < (1 << 16) || threads == 1) {
      work(0, n);
      return;
    }
    std::vector<std::thread> pool;
    const int64_t chunk = (n + threads - 1) / threads;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back(work, std::min<int64_t>(n, t * chunk), std::min<int64_t>(n, (t + 1) * chunk));
    for (auto& th : pool) th.join();
  };
  write_checkpoint(out_dir, specs, fill, opts.max_shard_bytes);

  ModelConfig written = c;
  written.torch_dtype = opts.dtype == StDType::BF16 ? "bfloat16"
                        : opts.dtype == StDType::F16 ? "float16" : "float32";
  write_file_atomic(path_join(out_dir, "config.json"), to_hf_json(written).dump(2) + "\n");
  // An object even with no token ids: transformers reads the file as one.
  nlohmann::json gen = nlohmann::json::object();
  if (c.bos_token_id >= 0) gen["bos_token_id"] = c.bos_token_id;
  if (!c.eos_token_ids.empty())
    gen["eos_token_id"] = c.eos_token_ids.size() == 1 ? nlohmann::json(c.eos_token_ids[0])
                                                      : nlohmann::json(c.eos_token_ids);
  write_file_atomic(path_join(out_dir, "generation_config.json"), gen.dump(2) + "\n");
  return params;
}

}  // namespace synthpert::engine
