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
  // "<answer>down</answer><answer>up": the reply was writing a new answer
  // when it was cut off, replacing the closed one; unfinished, it is no answer.
  for (const char* text : {"<answer>UPREGULATED", "<think>a repressor</think> so the gene is down",
                           "downregulated, because", "<answer>down</answer><answer>up",
                           "<answer>down</answer><answer>upregulated", "<answer>up</answer>\n<answer>"}) {
    INFO(text);
    CHECK(parse_answer(text).has_value());  // read when the reply ended on its own
    CHECK_FALSE(parse_answer(text, true).has_value());
  }
  // Cut off while writing a second answer: not the first one either.
  CHECK_FALSE(parse_answer("<answer>downregulated</answer><answer>upregul", true).has_value());
  // A closed last block is read, whatever came before it.
  CHECK(parse_answer("<answer>up</answer> no, wait: <answer>Downregulated</answer> because", true) == Label::kDown);
}

TEST_CASE("hedges and negations are never read as the label they rule out", "[parser]") {
  for (const char* text : {"<answer>It is unlikely to be upregulated</answer>", "<answer>hardly upregulated</answer>",
                           "The gene is hardly upregulated.", "It is unlikely to be downregulated",
                           "<answer>Upregulation is unlikely</answer>", "<answer>upregulated is doubtful</answer>",
                           "<answer>I doubt it is upregulated</answer>", "<answer>It is not at all likely to be "
                           "upregulated</answer>",
                           "<answer>upregulated or not</answer>",
                           "<answer>The gene isn\xe2\x80\x99t upregulated</answer>",
                           "<answer>The gene isnt upregulated</answer>", "<answer>Upregulated without a doubt</answer>",
                           // a hedge doubts NDE too
                           "<answer>unlikely to be unchanged</answer>",
                           // one clause naming both: neither is read
                           "<answer>downregulated rather than upregulated</answer>",
                           "<answer>downregulated instead of upregulated</answer>",
                           "<answer>not upregulated but downregulated</answer>",
                           // a suspended hyphen keeps the clause (and its negation or hedge) whole
                           "TP53 is not up- or downregulated.",
                           "**Answer:** No significant up- or downregulation expected.",
                           "It is unlikely to be up- or downregulated",
                           // a list closed by "or"/"nor" shares its opening negation
                           "Not upregulated (or downregulated)",
                           "It is not upregulated, downregulated, or otherwise affected",
                           "<answer>Not increased, nor decreased</answer>",
                           // ... its NDE item included: none of the three is stated
                           "It is not upregulated, downregulated, or unchanged",
                           "<answer>neither upregulated, downregulated, nor unchanged</answer>",
                           // stated and denied
                           "<answer>Upregulated. Or rather, not upregulated.</answer>",
                           // a question states nothing
                           "<answer>Upregulated? No.</answer>", "Is it downregulated? I cannot say."}) {
    INFO(text);
    CHECK_FALSE(parse_answer(text).has_value());
  }
}

TEST_CASE("a negation denies only the labels of its own clause", "[parser]") {
  const std::vector<std::pair<std::string, Label>> ok = {
      {"<answer>No, it is upregulated</answer>", Label::kUp},
      {"Upregulated \xe2\x80\xa6 no doubt", Label::kUp},
      {"Upregulated... no doubt", Label::kUp},
      {"<answer>Upregulated, no doubt</answer>", Label::kUp},
      {"<answer>Upregulated \xe2\x80\x94 not downregulated</answer>", Label::kUp},
      {"<answer>Not upregulated, but downregulated</answer>", Label::kDown},
      {"<answer>Downregulated, rather than upregulated</answer>", Label::kDown},
      {"<answer>Neither upregulated nor downregulated, so not differentially expressed</answer>", Label::kNde},
      {"<answer>Not upregulated or downregulated; unchanged</answer>", Label::kNde},  // after the list
      // NDE's own phrasing holds a negation; another beside it is about something else
      {"The gene is not differentially expressed as MYC does not bind it.", Label::kNde},
      {"<answer>not DE and not upregulated</answer>", Label::kNde},
      {"Is it upregulated? No. It is downregulated.", Label::kDown},
      {"<answer>It is probably upregulated</answer>", Label::kUp},
      {"The gene is upregulated; the repressor is not expressed.", Label::kUp},
      {"Not differentially expressed (no significant up- or down-regulation)", Label::kNde},
      {"<answer>Upregulated (or at least not downregulated)</answer>", Label::kUp},
      {"<answer>Not upregulated, or rather downregulated</answer>", Label::kDown},
      {"<answer>Not upregulated. Or downregulated.</answer>", Label::kDown},  // another sentence
      {"Upregulated - not downregulated", Label::kUp},  // a spaced hyphen is a dash
      {"MYC knockdown increases TP53 expression", Label::kUp},
      {"<answer>The knockdown decreases it</answer>", Label::kDown},
      {"<answer>The knockdown doesn't change it</answer>", Label::kNde},
  };
  for (const auto& [text, label] : ok) {
    INFO(text);
    const auto got = parse_answer(text);
    REQUIRE(got.has_value());
    CHECK(*got == label);
  }
}

TEST_CASE("the task's own 'knocked down' is not a direction", "[parser]") {
  CHECK(parse_answer("When MYC is knocked down, the gene is upregulated.") == Label::kUp);
  CHECK(parse_answer("<answer>Knocking down MYC leaves it downregulated</answer>") == Label::kDown);
  CHECK(parse_answer("After the knock-down of MYC the gene goes up") == Label::kUp);
  CHECK(parse_answer("To knock down MYC does not change it; unchanged") == Label::kNde);
  CHECK(parse_answer("The knockdown lowers nothing: not differentially expressed") == Label::kNde);
  // Other "down"s still count.
  CHECK(parse_answer("<answer>The gene goes down</answer>") == Label::kDown);
  CHECK_FALSE(parse_answer("When MYC is knocked down, the gene goes down and up").has_value());
}
