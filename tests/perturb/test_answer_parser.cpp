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
      // Empty tags a reply names are not its answer.
      {"<answer>upregulated</answer> (as requested, inside <answer></answer> tags)", Label::kUp},
      {"<think>I must answer in <answer></answer> tags.</think>downregulated", Label::kDown},
      {"<think>it is <answer>up</answer></think><answer>no change</answer>", Label::kNde},
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
                           "<answer>update</answer>", "\xff\xfe<answer>\x80</answer>",
                           // negations other than the NDE phrases
                           "<answer>The gene isn't upregulated</answer>", "<answer>not significantly upregulated</answer>",
                           "<answer>no upregulation</answer>", "<answer>Neither up nor downregulated</answer>",
                           // reasoning that never ended is not an answer
                           "<think>Knockdown of AAMP probably leaves ADGRE5 downregulated because",
                           "<think>upregulated", "<answer>up</answer><think>wait, it is down"}) {
    INFO(text);
    CHECK_FALSE(parse_answer(text).has_value());
  }
}

TEST_CASE("a reply cut off at its token limit is read only from a closed answer block", "[parser]") {
  CHECK(parse_answer("<think>a repressor is lost</think><answer>Downregulated</answer>", true) == Label::kDown);
  CHECK(parse_answer("<answer>up</answer> and then the model rambled on", true) == Label::kUp);
  for (const char* text : {"<answer>UPREGULATED", "<think>a repressor</think> so the gene is down",
                           "downregulated, because", "<answer>down</answer><answer>up"}) {
    INFO(text);
    CHECK(parse_answer(text).has_value());  // read when the reply ended on its own
    CHECK_FALSE(parse_answer(text, true).has_value());
  }
}
