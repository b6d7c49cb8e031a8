// config.json parsing for each architecture and its error messages.
#include <catch2/catch.hpp>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "engine/config.h"
#include "engine/init_model.h"

using namespace synthpert;
using namespace synthpert::engine;
using nlohmann::json;

namespace {
json base(const char* model_type) {
  return {{"model_type", model_type}, {"vocab_size", 100}, {"hidden_size", 64},
          {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}};
}
}  // namespace

TEST_CASE("architecture-specific defaults", "[config]") {
  auto q2 = parse_config(base("qwen2"), "c.json");
  CHECK(q2.attention_bias);
  CHECK_FALSE(q2.o_proj_bias);
  auto q3 = parse_config(base("qwen3"), "c.json");
  CHECK(q3.qk_norm);
  // Qwen3Config defaults head_dim to 128 whatever hidden_size / heads is
  // (16 here); Qwen2 and Llama derive it.
  CHECK(q3.head_dim == 128);
  CHECK(q2.head_dim == 16);
  auto j = base("qwen3");
  j["head_dim"] = 32;
  CHECK(parse_config(j, "c.json").head_dim == 32);
  auto m = base("mistral");
  m["sliding_window"] = 4096;
  CHECK(parse_config(m, "c.json").sliding_window == 4096);
  m["sliding_window"] = nullptr;
  CHECK(parse_config(m, "c.json").sliding_window == 0);
  auto l = base("llama");
  l["eos_token_id"] = {128001, 128009};
  l["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  auto lc = parse_config(l, "c.json");
  CHECK(lc.eos_token_ids == std::vector<int64_t>{128001, 128009});
  CHECK(lc.rope_scaling.type == "llama3");
  CHECK(lc.num_key_value_heads == 2);
}

TEST_CASE("transformers 5's rope_parameters carry theta and scaling", "[config]") {
  // What transformers 5 writes for Llama 3.1 (no top-level rope_theta).
  auto l = base("llama");
  l["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  auto c = parse_config(l, "c.json");
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.rope_scaling.type == "llama3");
  CHECK(c.rope_scaling.factor == 8.0);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  // And for Qwen2: default RoPE with its own theta.
  auto q = base("qwen2");
  q["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  c = parse_config(q, "c.json");
  CHECK(c.rope_theta == 1000000.0);
  CHECK(c.rope_scaling.type == "default");
  // Both layouts at once must agree.
  l["rope_theta"] = 500000.0;
  l["rope_scaling"] = l["rope_parameters"];
  l["rope_scaling"].erase("rope_theta");
  CHECK(parse_config(l, "c.json").rope_theta == 500000.0);
  l["rope_theta"] = 10000.0;
  CHECK_THROWS_WITH(parse_config(l, "c.json"), Catch::Contains("disagree"));
  l["rope_theta"] = 500000.0;
  l["rope_scaling"]["factor"] = 4.0;
  CHECK_THROWS_WITH(parse_config(l, "c.json"), Catch::Contains("different RoPE scalings"));
  q["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 1e6}, {"factor", 4.0}};
  CHECK_THROWS_WITH(parse_config(q, "c.json"), Catch::Contains("rope_parameters") && Catch::Contains("'yarn'"));
}

TEST_CASE("absent keys take transformers' config-class defaults", "[config]") {
  CHECK(parse_config(base("mistral"), "c.json").sliding_window == 4096);  // MistralConfig
  auto q = base("qwen2");
  q["use_sliding_window"] = true;
  auto c = parse_config(q, "c.json");
  CHECK(c.sliding_window == 4096);  // Qwen2Config
  CHECK(c.max_window_layers == 28);
  // layer_types, when given, must agree with the max_window_layers rule.
  auto lt = base("qwen2");
  lt["use_sliding_window"] = true;
  lt["sliding_window"] = 8;
  lt["max_window_layers"] = 1;
  lt["layer_types"] = {"full_attention", "sliding_attention"};
  CHECK(parse_config(lt, "c.json").layer_window(1) == 8);
  lt["layer_types"] = {"sliding_attention", "full_attention"};
  CHECK_THROWS_WITH(parse_config(lt, "c.json"), Catch::Contains("layer_types[0] is \"sliding_attention\""));
  lt["use_sliding_window"] = false;  // no window: every layer is full, whatever its type says
  CHECK_NOTHROW(parse_config(lt, "c.json"));
  lt["layer_types"] = {"full_attention"};
  CHECK_THROWS_WITH(parse_config(lt, "c.json"), Catch::Contains("one type per layer (2)"));
  // Context length and KV heads: each class has its own default, and a null
  // KV head count means one per query head.
  const std::vector<std::tuple<const char*, int64_t, int64_t>> classes = {
      {"llama", 2048, 32}, {"mistral", 131072, 8}, {"qwen2", 32768, 32}, {"qwen3", 32768, 32}};
  for (const auto& [type, context, kv] : classes) {
    INFO(type);
    auto k = base(type);
    k["num_attention_heads"] = 32;
    k["hidden_size"] = 32 * 16;
    k.erase("num_key_value_heads");
    const auto absent = parse_config(k, "c.json");
    CHECK(absent.max_position_embeddings == context);
    CHECK(absent.num_key_value_heads == kv);
    k["num_key_value_heads"] = nullptr;
    CHECK(parse_config(k, "c.json").num_key_value_heads == 32);
  }
  auto act = base("llama");
  act["hidden_act"] = "swish";
  CHECK_NOTHROW(parse_config(act, "c.json"));
  act["hidden_act"] = "gelu";
  CHECK_THROWS_WITH(parse_config(act, "c.json"), Catch::Contains("hidden_act \"gelu\""));
}

TEST_CASE("config errors name the file and the key", "[config]") {
  auto j = base("llama");
  j.erase("hidden_size");
  CHECK_THROWS_WITH(parse_config(j, "m/config.json"),
                    Catch::Contains("m/config.json") && Catch::Contains("'hidden_size'"));
  CHECK_THROWS_WITH(parse_config(base("gpt2"), "c.json"), Catch::Contains("'gpt2'"));
  auto bad_heads = base("llama");
  bad_heads["num_key_value_heads"] = 3;
  CHECK_THROWS_WITH(parse_config(bad_heads, "c.json"), Catch::Contains("multiple"));
  auto yarn = base("llama");
  yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  CHECK_THROWS_WITH(parse_config(yarn, "c.json"), Catch::Contains("'yarn'"));
  auto str = base("llama");
  str["vocab_size"] = "many";
  CHECK_THROWS_AS(parse_config(str, "c.json"), InputError);
  // Found by tests/fuzz/fuzz_model_config: keys read as strings or integers
  // without a check escaped as raw json exceptions, naming no file.
  const auto refused = [](json j, const std::string& phrase) {
    CHECK_THROWS_AS(parse_config(j, "m/config.json"), InputError);
    CHECK_THROWS_WITH(parse_config(j, "m/config.json"), Catch::Contains("m/config.json") && Catch::Contains(phrase));
  };
  auto arch = base("llama");
  arch.erase("model_type");
  arch["architectures"] = {true};
  refused(arch, "'architectures' must list strings");
  auto rope = base("llama");
  rope["rope_scaling"] = {{"rope_type", 3}, {"factor", 4.0}};
  refused(rope, "rope_scaling.rope_type must be a string");
  auto params = base("llama");
  params["rope_parameters"] = {{"type", nullptr}};
  refused(params, "rope_parameters.type must be a string");
  auto eos = base("llama");
  eos["eos_token_id"] = {1, "two"};
  refused(eos, "eos_token_id must be an integer or a list of integers");
  eos["eos_token_id"] = 2.5;
  refused(eos, "eos_token_id must be");
}

TEST_CASE("to_hf_json round-trips through parse_config", "[config]") {
  for (Arch a : {Arch::kLlama, Arch::kQwen2, Arch::kQwen3, Arch::kMistral}) {
    auto c = preset_config(a, "tiny");
    if (a == Arch::kMistral) c.sliding_window = 7;
    auto back = parse_config(to_hf_json(c), "rt");
    CHECK(back.arch == c.arch);
    CHECK(back.head_dim == c.head_dim);
    CHECK(back.attention_bias == c.attention_bias);
    CHECK(back.qk_norm == c.qk_norm);
    CHECK(back.sliding_window == c.sliding_window);
    CHECK(back.num_parameters() == c.num_parameters());
  }
  auto l8 = preset_config(Arch::kLlama, "llama3-8b");
  CHECK(l8.num_parameters() == 8030261248);  // Llama-3.1-8B's published parameter count
  auto back = parse_config(to_hf_json(l8), "rt");
  CHECK(back.rope_scaling.factor == 8.0);
}
