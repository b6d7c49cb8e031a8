#include <catch2/catch.hpp>

#include "perturb/answer_parser.h"

using namespace synthpert::perturb;

TEST_CASE("answers are read despite case, punctuation and extra words", "[parser]") {
  const std::vector<std::pair<std::string, Label>> ok = {
      {"<answer>upregulated</answer>", Label::kUp},
      {"<think>KO of a repressor...</think>\n<answer> Downregulated. </answer>", Label::kDown},
      {"<ANSWER>Not Differentially Expressed</ANSWER>", Label::kNde},
      {"<answer>The gene is up-regulated</answer>", Label::kUp},
      {"<think>it might be upregulated, or not</think> final: not differentially expressed", Label::kNde},
      {"<answer>first guess upregulated</answer> then <answer>down regulated</answer>", Label::kDown},
      {"downregulated", Label::kDown},
      {" not DE", Label::kNde},
      {"Answer: no change.", Label::kNde},
      {"<answer>UPREGULATED", Label::kUp},  // unterminated tag
      {"expression is decreased", Label::kDown},
  };
  for (const auto& [text, label] : ok) {
    INFO(text);
    const auto got = parse_answer(text);
    REQUIRE(got.has_value());
    CHECK(*got == label);
  }
}

TEST_CASE("empty, ambiguous or unrelated answers are unparsed", "[parser]") {
  for (const char* text : {"", "<answer></answer>", "<answer>upregulated or downregulated</answer>",
                           "I cannot tell.", "<answer>differentially expressed</answer>",
                           "<answer>not upregulated</answer>", "<think>upregulated</think>",
                           "<answer>update</answer>", "\xff\xfe<answer>\x80</answer>"}) {
    INFO(text);
    CHECK_FALSE(parse_answer(text).has_value());
  }
}
