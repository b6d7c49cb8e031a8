// LoRA targets, PEFT-style initialisation and the PEFT adapter files.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>

#include "common/error.h"
#include "engine/nf4.h"
#include "engine/peft_adapter.h"
#include "engine/tensor_io.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/lora.h"

using namespace synthpert;
using nlohmann::json;

TEST_CASE("LoRA target names map to Hugging Face module names", "[lora]") {
  CHECK(trainer::parse_lora_targets("q,v") == std::vector<std::string>{"q_proj", "v_proj"});
  CHECK(trainer::parse_lora_targets("down_proj, q ,q") == std::vector<std::string>{"q_proj", "down_proj"});
  CHECK(trainer::parse_lora_targets("all").size() == 7);
  CHECK(trainer::parse_lora_targets("q,k,v,o,gate,up,down") == trainer::parse_lora_targets("all"));
  CHECK_THROWS_WITH(trainer::parse_lora_targets("q,lm_head"), Catch::Contains("unknown module 'lm_head'"));
  CHECK_THROWS_WITH(trainer::parse_lora_targets(""), Catch::Contains("unknown module ''"));
}

TEST_CASE("fresh adapters follow PEFT's init and leave the model's function unchanged", "[lora]") {
  test::TempDir dir("lora-init");
  test::make_model(dir.path + "/model");
  auto model = engine::Transformer::load(dir.path + "/model");
  const auto ids = torch::tensor(std::vector<int64_t>{5, 9, 100, 3, 7}).unsqueeze(0);
  torch::NoGradGuard g;
  const auto before = model.forward(engine::ForwardBatch::from_ids(ids));
  engine::LoraSpec spec;
  spec.r = 16;
  spec.alpha = 8;
  spec.target_modules = trainer::parse_lora_targets("q,up,down");
  trainer::attach_lora(model, spec, 1);
  int64_t adapted = 0;
  for (auto& [name, lin] : model.named_linears()) {
    const bool targeted = name.find("q_proj") != std::string::npos || name.find("up_proj") != std::string::npos ||
                          name.find("down_proj") != std::string::npos;
    REQUIRE(static_cast<bool>(lin->lora) == targeted);
    if (!lin->lora) continue;
    ++adapted;
    const auto& A = lin->lora->A;
    const double bound = 1.0 / std::sqrt(static_cast<double>(lin->in_features()));
    CHECK(A.sizes() == torch::IntArrayRef({16, lin->in_features()}));
    CHECK(A.abs().max().item<double>() <= bound);
    // Uniform(-b, b): standard deviation b / sqrt(3); >= 1152 draws each.
    CHECK(A.std().item<double>() == Approx(bound / std::sqrt(3.0)).epsilon(0.08));
    CHECK(A.mean().item<double>() == Approx(0).margin(0.1 * bound));
    CHECK(lin->lora->B.abs().max().item<double>() == 0);
    CHECK(lin->lora->scale == 0.5);
  }
  CHECK(adapted == 6);
  CHECK(torch::equal(model.forward(engine::ForwardBatch::from_ids(ids)), before));
  // Seeded: the same seed gives the same values, modules differ from each other.
  auto again = engine::Transformer::load(dir.path + "/model");
  trainer::attach_lora(again, spec, 1);
  CHECK(torch::equal(again.layers[1].q_proj.lora->A, model.layers[1].q_proj.lora->A));
  CHECK_FALSE(torch::equal(model.layers[0].q_proj.lora->A, model.layers[1].q_proj.lora->A));
  auto other = engine::Transformer::load(dir.path + "/model");
  trainer::attach_lora(other, spec, 2);
  CHECK_FALSE(torch::equal(other.layers[1].q_proj.lora->A, model.layers[1].q_proj.lora->A));
  spec.rslora = true;
  CHECK(spec.scale() == Approx(8.0 / 4.0));
}

TEST_CASE("PEFT adapter files round trip and carry PEFT's names", "[lora]") {
  test::TempDir dir("lora-peft");
  test::make_model(dir.path + "/model");
  auto model = engine::Transformer::load(dir.path + "/model");
  engine::LoraSpec spec;
  spec.r = 3;
  spec.alpha = 7;
  spec.dropout = 0.05;
  spec.rslora = true;
  spec.target_modules = trainer::parse_lora_targets("k,o");
  trainer::attach_lora(model, spec, 4);
  torch::manual_seed(0);
  for (auto& [name, lin] : model.named_linears())
    if (lin->lora) lin->lora->B = torch::randn(lin->lora->B.sizes());
  const std::string ad = dir.path + "/adapter";
  engine::save_peft_adapter(ad, model, spec, "base-model");

  const auto cfg = json::parse(test::read_text(ad + "/adapter_config.json"));
  CHECK(cfg["peft_type"] == "LORA");
  CHECK(cfg["r"] == 3);
  CHECK(cfg["lora_alpha"] == 7.0);
  CHECK(cfg["use_rslora"] == true);
  CHECK(cfg["target_modules"] == json({"k_proj", "o_proj"}));
  const auto tensors = engine::load_tensors(ad + "/adapter_model.safetensors");
  CHECK(tensors.size() == 8);  // 2 layers x 2 modules x (A, B)
  REQUIRE(tensors.count("base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight"));
  CHECK(tensors.at("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight").sizes() ==
        torch::IntArrayRef({3, 72}));

  auto loaded = engine::Transformer::load(dir.path + "/model");
  const auto got = engine::load_peft_adapter(ad, loaded);
  CHECK(got.r == 3);
  CHECK(got.rslora);
  for (size_t i = 0; i < model.layers.size(); ++i) {
    CHECK(torch::equal(loaded.layers[i].k_proj.lora->A, model.layers[i].k_proj.lora->A));
    CHECK(torch::equal(loaded.layers[i].o_proj.lora->B, model.layers[i].o_proj.lora->B));
    CHECK(loaded.layers[i].o_proj.lora->scale == Approx(7.0 / std::sqrt(3.0)));
    CHECK_FALSE(loaded.layers[i].q_proj.lora);
  }
  const auto ids = torch::tensor(std::vector<int64_t>{1, 50, 2}).unsqueeze(0);
  torch::NoGradGuard g;
  CHECK(torch::equal(loaded.forward(engine::ForwardBatch::from_ids(ids)),
                     model.forward(engine::ForwardBatch::from_ids(ids))));

  // PEFT targets a module whose name is a target or ends with "." + one.
  auto dotted = cfg;
  dotted["target_modules"] = {"self_attn.k_proj", "model.layers.0.self_attn.o_proj", "layers.1.self_attn.o_proj"};
  std::ofstream(ad + "/adapter_config.json") << dotted.dump();
  auto reloaded = engine::Transformer::load(dir.path + "/model");
  engine::load_peft_adapter(ad, reloaded);
  CHECK(torch::equal(reloaded.forward(engine::ForwardBatch::from_ids(ids)),
                     model.forward(engine::ForwardBatch::from_ids(ids))));
  dotted["target_modules"] = {"_proj"};  // no whole name part: o_proj's weights are not targeted
  std::ofstream(ad + "/adapter_config.json") << dotted.dump();
  auto partial = engine::Transformer::load(dir.path + "/model");
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, partial), Catch::Contains("is not in target_modules"));

  // A config without lora_alpha means PEFT's default of 8, not r.
  auto no_alpha = cfg;
  no_alpha.erase("lora_alpha");
  std::ofstream(ad + "/adapter_config.json") << no_alpha.dump();
  CHECK(engine::read_peft_config(ad).alpha == 8.0);
}

TEST_CASE("PEFT's exclude_modules leaves matched modules out, as PEFT 0.14+ does", "[lora]") {
  test::TempDir dir("lora-exclude");
  test::make_model(dir.path + "/model");
  auto fresh = [&] { return engine::Transformer::load(dir.path + "/model"); };
  auto model = fresh();
  engine::LoraSpec spec;
  spec.r = 2;
  spec.target_modules = {"q_proj", "v_proj"};
  trainer::attach_lora(model, spec, 4);
  const std::string ad = dir.path + "/a";
  engine::save_peft_adapter(ad, model, spec, "m");
  // The same weights described as all-linear minus five module kinds.
  auto cfg = nlohmann::json::parse(test::read_text(ad + "/adapter_config.json"));
  cfg["target_modules"] = "all-linear";
  cfg["exclude_modules"] = {"k_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  std::ofstream(ad + "/adapter_config.json") << cfg.dump();
  auto loaded = fresh();
  const auto read = engine::load_peft_adapter(ad, loaded);
  size_t adapted = 0;
  std::map<std::string, engine::Linear*> ours;
  for (auto& [name, lin] : model.named_linears()) ours[name] = lin;
  for (auto& [name, lin] : loaded.named_linears()) {
    INFO(name);
    auto* const trained = ours.at(name);
    REQUIRE(static_cast<bool>(lin->lora) == static_cast<bool>(trained->lora));
    if (!lin->lora) continue;
    ++adapted;
    CHECK(torch::equal(lin->lora->A, trained->lora->A));
    CHECK(torch::equal(lin->lora->B, trained->lora->B));
  }
  CHECK(adapted == 2 * static_cast<size_t>(model.config().num_hidden_layers));
  // Saved again, the exclusions travel with it: the file loads as it was read.
  engine::save_peft_adapter(dir.path + "/b", loaded, read, "m");
  auto again = fresh();
  CHECK_NOTHROW(engine::load_peft_adapter(dir.path + "/b", again));
  // Its regular-expression form is refused by name.
  cfg["exclude_modules"] = ".*down_proj";
  std::ofstream(ad + "/adapter_config.json") << cfg.dump();
  auto refused = fresh();
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, refused), Catch::Contains("'exclude_modules' as a regular expression"));
}

TEST_CASE("PEFT adapters that do not fit the model are refused", "[lora]") {
  test::TempDir dir("lora-bad");
  test::make_model(dir.path + "/model");
  auto model = engine::Transformer::load(dir.path + "/model");
  engine::LoraSpec spec;
  spec.r = 2;
  spec.target_modules = {"q_proj"};
  trainer::attach_lora(model, spec, 4);
  const std::string ad = dir.path + "/a";
  engine::save_peft_adapter(ad, model, spec, "m");
  const auto good = engine::load_tensors(ad + "/adapter_model.safetensors");
  const std::string wfile = ad + "/adapter_model.safetensors";
  auto rewrite = [&](engine::NamedTensors t) { engine::save_tensors(wfile, t); };
  auto fresh = [&] { return engine::Transformer::load(dir.path + "/model"); };

  engine::NamedTensors t(good.begin(), good.end());
  t.emplace_back("base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", torch::zeros({2, 72}));
  rewrite(t);
  auto m1 = fresh();
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, m1), Catch::Contains("which this model does not have"));

  t.assign(good.begin(), good.end());
  t[0].second = torch::zeros({2, 71});
  rewrite(t);
  auto m2 = fresh();
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, m2), Catch::Contains("expected [2, 72]"));

  t.assign(good.begin(), good.end());
  t.erase(t.begin() + 1);  // layer 0's lora_B
  rewrite(t);
  auto m3 = fresh();
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, m3), Catch::Contains("missing"));

  rewrite(engine::NamedTensors(good.begin(), good.end()));
  std::ofstream(ad + "/adapter_config.json") << R"({"peft_type":"LORA","r":2,"target_modules":["q_proj"],"use_dora":true})";
  auto m4 = fresh();
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, m4), Catch::Contains("DoRA"));
  std::ofstream(ad + "/adapter_config.json")
      << R"({"peft_type":"LORA","r":2,"target_modules":["q_proj"],"layers_to_transform":[0]})";
  auto m6 = fresh();
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, m6), Catch::Contains("some layers only"));
  std::ofstream(ad + "/adapter_config.json") << R"({"peft_type":"PREFIX_TUNING"})";
  auto m5 = fresh();
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, m5), Catch::Contains("peft_type must be \"LORA\""));
  // A key of the wrong type is an input error naming the file.
  std::ofstream(ad + "/adapter_config.json") << R"({"peft_type":"LORA","r":2,"target_modules":["q_proj"],"lora_alpha":null})";
  auto m7 = fresh();
  CHECK_THROWS_AS(engine::load_peft_adapter(ad, m7), synthpert::InputError);
  CHECK_THROWS_WITH(engine::load_peft_adapter(ad, m7), Catch::Contains("adapter_config.json: "));
}

TEST_CASE("adapter configs with values no adapter can use are refused, naming the field", "[lora]") {
  const auto parse = [](const char* text) {
    return engine::parse_peft_config(nlohmann::json::parse(text), "dir/adapter_config.json");
  };
  const auto with = [](const std::string& field) {
    return R"({"peft_type":"LORA","r":4,"target_modules":["q_proj"],)" + field + "}";
  };
  CHECK(parse(with(R"("lora_dropout":0.05)").c_str()).dropout == 0.05);
  CHECK_THROWS_WITH(parse(with(R"("lora_dropout":1)").c_str()),
                    Catch::Contains("dir/adapter_config.json: 'lora_dropout' must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(parse(with(R"("lora_dropout":-0.5)").c_str()), Catch::Contains("'lora_dropout'"));
  CHECK(parse(with(R"("lora_alpha":-16)").c_str()).scale() == -4.0);  // PEFT takes it; so do we
  CHECK_THROWS_WITH(parse(with(R"("lora_alpha":1e300)").c_str()), Catch::Contains("'lora_alpha' must be"));
  CHECK_THROWS_WITH(parse(R"({"peft_type":"LORA","r":4,"target_modules":["q_proj",""]})"),
                    Catch::Contains("non-empty strings"));
  CHECK_THROWS_WITH(parse(R"({"peft_type":"LORA","r":4,"target_modules":"q_proj|v_proj"})"),
                    Catch::Contains("'target_modules' must be a non-empty list"));
  // What save_peft_adapter writes reads back as the same spec.
  const auto spec = parse(with(R"("lora_alpha":12.5,"use_rslora":true,"exclude_modules":["lm_head"])").c_str());
  const auto again = engine::parse_peft_config(engine::peft_config_json(spec, "m"), "written");
  CHECK(again.alpha == 12.5);
  CHECK(again.rslora);
  CHECK(again.target_modules == spec.target_modules);
  CHECK(again.exclude_modules == std::vector<std::string>{"lm_head"});
}

TEST_CASE("a merged save of an NF4 model writes each weight dequantised plus its scaled B A", "[lora]") {
  test::TempDir dir("lora-merge-nf4");
  auto c = test::odd_config();  // sizes NF4's 64-value blocks divide
  c.hidden_size = 96;
  c.head_dim = 32;
  c.intermediate_size = 160;
  test::make_model(dir.path + "/model", 7, c);
  engine::LoadOptions lo;
  lo.nf4 = true;
  auto model = engine::Transformer::load(dir.path + "/model", lo);
  engine::LoraSpec spec;
  spec.r = 2;
  spec.alpha = 3;
  spec.target_modules = {"q_proj", "down_proj"};
  trainer::attach_lora(model, spec, 5);
  torch::manual_seed(3);
  for (auto& [name, lin] : model.named_linears())
    if (lin->lora) lin->lora->B = torch::randn_like(lin->lora->B);  // fresh B is zero: nothing to merge
  model.save(dir.path + "/merged", engine::StDType::F32, /*merge_lora=*/true);

  auto saved = engine::load_tensors(dir.path + "/merged/model.safetensors");
  auto original = engine::load_tensors(dir.path + "/model/model.safetensors");
  REQUIRE(saved.size() == original.size());
  int64_t merged = 0;
  for (auto& [name, lin] : model.named_linears()) {
    INFO(name);
    REQUIRE(saved.count(name + ".weight"));
    const auto& got = saved[name + ".weight"];
    if (!lin->nf4) {
      CHECK(torch::equal(got, original[name + ".weight"]));
      continue;
    }
    auto want = engine::nf4_dequantize(*lin->nf4).to(torch::kFloat32);
    if (lin->lora) {
      want = want + torch::mm(lin->lora->B, lin->lora->A) * (3.0 / 2.0);
      ++merged;
    }
    CHECK((got - want).abs().max().item<double>() <= 1e-6);
  }
  CHECK(merged == 4);  // two layers, two targets
  CHECK(torch::equal(saved["model.embed_tokens.weight"], original["model.embed_tokens.weight"]));
}
