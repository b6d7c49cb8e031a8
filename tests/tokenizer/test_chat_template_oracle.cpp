// Chat templates rendered by our interpreter against @huggingface/jinja
// (the renderer transformers.js uses) on the packages' real templates and on
// templates written to exercise the supported Jinja subset.
#include <catch2/catch.hpp>

#include "common/fs.h"
#include "tests/tokenizer/oracle_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer_config.h"

using synthpert::tokenizer::ChatTemplate;
using namespace synthpert::test;
using json = nlohmann::json;

namespace {

// Conversations: system/user/assistant, with and without a system turn,
// reasoning in assistant turns, whitespace and non-ASCII content.
std::vector<json> conversations() {
  const json sys = {{"role", "system"}, {"content", "You are an expert molecular biologist."}};
  const json u1 = {{"role", "user"}, {"content", "Does knocking down TP53 in K562 cells change CDKN1A?  "}};
  const json a1 = {{"role", "assistant"}, {"content", "<think>\nTP53 activates CDKN1A.\n</think>\n\n<answer>downregulated</answer>"}};
  const json u2 = {{"role", "user"}, {"content", "And MYC → CCND1? Café ☕ 你好!"}};
  // No leading spaces before a newline-stripped part: @huggingface/jinja's
  // lstrip(chars) strips all whitespace, unlike Python (covered in test_jinja.cpp).
  const json a2 = {{"role", "assistant"}, {"content", "<answer>not differentially expressed</answer>\n  "}};
  const json u3 = {{"role", "user"}, {"content", "Plain question."}};
  return {json::array({u3}),
          json::array({sys, u1}),
          json::array({sys, u1, a1}),
          json::array({sys, u1, a1, u2}),
          json::array({u1, a1, u2, a2}),
          json::array({sys, u1, a1, u2, a2, u3}),
          json::array({u2}),
          json::array({sys, u3, a2})};
}

std::map<std::string, std::string> token_vars(const synthpert::tokenizer::TokenizerConfig& cfg) {
  std::map<std::string, std::string> v;
  for (const auto& [k, x] : cfg.template_tokens()) v[k] = x;
  return v;
}

// Renders every conversation with and without the generation prompt on both
// sides and requires byte-identical text.
void compare(const std::string& label, const ChatTemplate& ours, const std::map<std::string, std::string>& vars) {
  json cases = json::array();
  std::vector<std::string> texts;
  for (const auto& conv : conversations())
    for (bool agp : {false, true}) {
      // As transformers calls the template: tools and documents are None.
      json v = {{"messages", conv}, {"add_generation_prompt", agp}, {"tools", nullptr}, {"documents", nullptr}};
      for (const auto& [k, x] : vars) v[k] = x;
      cases.push_back({{"template", ours.source()}, {"vars", v}});
    }
  const json out = run_node("render.js", {{"cases", cases}});
  size_t k = 0, rendered = 0;
  for (const auto& conv : conversations())
    for (bool agp : {false, true}) {
      INFO(label << " case " << k << " add_generation_prompt=" << agp << " messages " << conv.dump());
      const json& r = out["results"][k++];
      if (r.contains("error")) {
        // Both renderers must refuse (e.g. raise_exception on bad role order).
        CHECK_THROWS(ours.render_json(conv, agp));
        continue;
      }
      CHECK(ours.render_json(conv, agp) == r["text"].get<std::string>());
      ++rendered;
    }
  // Most cases must render (not just agree on refusing).
  CHECK(rendered * 2 >= k);
}

ChatTemplate from_file(const std::string& name) {
  ChatTemplate t = ChatTemplate::from_string(synthpert::read_file(std::string(SYNTHPERT_SOURCE_DIR) + "/tests/tokenizer/templates/" + name));
  t.set_variable("bos_token", "<s>");
  t.set_variable("eos_token", "</s>");
  return t;
}

}  // namespace

TEST_CASE("llama3.1 and qwen3 chat templates match @huggingface/jinja", "[oracle]") {
  for (const std::string name : {"llama3_1", "qwen3"}) {
    const std::string dir = package_models_dir(name);
    compare(name, ChatTemplate::load(dir), token_vars(synthpert::tokenizer::TokenizerConfig::load(dir)));
  }
}

TEST_CASE("templates exercising the Jinja subset match @huggingface/jinja", "[oracle]") {
  const std::map<std::string, std::string> vars = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  for (const std::string f : {"inst_alternating.jinja", "namespace_reasoning.jinja", "filters_loops.jinja", "whitespace_control.jinja"})
    compare(f, from_file(f), vars);
}

TEST_CASE("qwen3 template sees extra message fields (reasoning_content)", "[oracle]") {
  const std::string dir = package_models_dir("qwen3");
  const ChatTemplate t = ChatTemplate::load(dir);
  const json conv = json::array({{{"role", "user"}, {"content", "Q?"}},
                                 {{"role", "assistant"}, {"content", "A."}, {"reasoning_content", "Because."}}});
  json v = {{"messages", conv}, {"add_generation_prompt", false}};
  for (const auto& [k, x] : token_vars(synthpert::tokenizer::TokenizerConfig::load(dir))) v[k] = x;
  const json out = run_node("render.js", {{"cases", json::array({{{"template", t.source()}, {"vars", v}}})}});
  CHECK(t.render_json(conv, false) == out["results"][0]["text"].get<std::string>());
  CHECK(t.render_json(conv, false).find("Because.") != std::string::npos);
}
