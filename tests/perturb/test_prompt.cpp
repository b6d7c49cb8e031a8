#include <catch2/catch.hpp>
#include <fstream>

#include "common/error.h"
#include "perturb/data_jsonl.h"
#include "perturb/prompt.h"
#include "tests/test_util.h"

using namespace synthpert;
using namespace synthpert::perturb;

TEST_CASE("built-in templates load and render every placeholder", "[prompt]") {
  const auto names = builtin_prompt_names();
  REQUIRE(std::find(names.begin(), names.end(), "reasoning") != names.end());
  REQUIRE(std::find(names.begin(), names.end(), "compact") != names.end());
  REQUIRE(std::find(names.begin(), names.end(), "compact-evidence") != names.end());
  const auto t = PromptTemplate::load("reasoning");
  CHECK_THAT(t.render_user("rpe1", "TP53", "CDKN1A"),
             Catch::Contains("RPE1 (") && Catch::Contains("TP53") && Catch::Contains("CDKN1A"));
  CHECK_THAT(t.render_system("rpe1", "TP53", "CDKN1A"), Catch::Contains("<answer>"));
  CHECK(t.render_answer(Label::kDown) == "<answer>downregulated</answer>");
  const auto c = PromptTemplate::load("compact");
  CHECK(c.system.empty());
  CHECK(c.render_user("k562", "A", "B") == "k562 A B ->");
  CHECK(c.render_answer(Label::kNde) == " not differentially expressed");
}

TEST_CASE("user templates: format and errors", "[prompt]") {
  test::TempDir tmp("prompt");
  const std::string path = tmp.path + "/t.txt";
  std::ofstream(path) << "# mine\n\n[user]\nline one {gene}\n\nline three\n\n[answer]\n=> {label}\n";
  const auto t = PromptTemplate::load(path);
  CHECK(t.render_user("k562", "P", "G") == "line one G\n\nline three");
  CHECK(t.render_answer(Label::kUp) == "=> upregulated");
  CHECK(t.system.empty());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[user]\nx {genes}\n[answer]\n{label}\n", "unknown placeholder {genes}"},
      {"[user]\nx\n[answer]\nno label\n", "must contain {label}"},
      {"[answer]\n{label}\n", "missing or empty [user]"},
      {"hello\n[user]\nx\n[answer]\n{label}\n", ":1: text before the first section"},
      {"[user]\nx\n[user]\ny\n[answer]\n{label}\n", ":3: section [user] appears twice"},
      // Latin-1 bytes (a file saved in the wrong encoding).
      {"[user]\ncaf\xe9 {gene}\n[answer]\n{label}\n", "t.txt: not UTF-8 text"},
  };
  for (const auto& [text, expect] : bad) {
    std::ofstream(path) << text;
    INFO(text);
    CHECK_THROWS_WITH(PromptTemplate::load(path), Catch::Contains(expect));
  }
  CHECK_THROWS_WITH(PromptTemplate::load("no-such-template"), Catch::Contains("neither a built-in"));
}

TEST_CASE("data rows name the template their messages came from", "[prompt]") {
  const Row row{"k562", "TP53", "CDKN1A", Label::kUp, true, {}};
  const auto compact = PromptTemplate::load("compact");
  const auto j = row_to_json(row, compact, /*with_answer=*/true);
  CHECK(j["prompt_template"] == "compact");
  // No system turn (compact has none): train then adds none either.
  REQUIRE(j["messages"].size() == 2);
  CHECK(j["messages"][0]["role"] == "user");
  CHECK(j["messages"][0]["content"] == "k562 TP53 CDKN1A ->");
  CHECK(j["messages"][1] == nlohmann::json({{"role", "assistant"}, {"content", " upregulated"}}));
  const auto reasoning = row_to_json(row, PromptTemplate::load("reasoning"), false);
  CHECK(reasoning["prompt_template"] == "reasoning");
  CHECK(reasoning["messages"][0]["role"] == "system");
}
