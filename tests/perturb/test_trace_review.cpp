// The pure parts of `synthpert traces`: grade parsing, the checks a teacher
// reply must pass, prompt files, input rows and API addresses. Expected
// values are written out by hand.
#include <catch2/catch.hpp>

#include <fstream>

#include "common/error.h"
#include "perturb/openai_client.h"
#include "perturb/trace_inputs.h"
#include "perturb/trace_prompts.h"
#include "perturb/trace_review.h"
#include "tests/test_util.h"

namespace synthpert::perturb {
namespace {

TEST_CASE("judge grades: tags, case, the last one wins; anything unclear is no grade", "[traces]") {
  CHECK(parse_grade("Sound mechanism.\n<grade>excellent</grade>") == Grade::kExcellent);
  CHECK(parse_grade("<GRADE> Good </GRADE>") == Grade::kGood);
  CHECK(parse_grade("first <grade>bad</grade>, on reflection <grade>average</grade>") == Grade::kAverage);
  CHECK(parse_grade("The steps follow.\n\nTerrible.") == Grade::kTerrible);
  CHECK(parse_grade("good") == Grade::kGood);
  CHECK_FALSE(parse_grade("<grade>great</grade>"));
  CHECK_FALSE(parse_grade("<grade>good"));
  CHECK_FALSE(parse_grade("good but not excellent"));
  CHECK_FALSE(parse_grade(""));
  // A tag naming no grade is not rescued by a grade word elsewhere.
  CHECK_FALSE(parse_grade("excellent\n<grade>n/a</grade>"));

  CHECK(parse_grade_list("excellent,good") == std::set<Grade>{Grade::kExcellent, Grade::kGood});
  CHECK(parse_grade_list(" Average ") == std::set<Grade>{Grade::kAverage});
  CHECK_THROWS_WITH(parse_grade_list("excellent,great"), Catch::Contains("'great' is not a grade"));
  CHECK_THROWS_AS(parse_grade_list(""), InputError);
  CHECK_THROWS_AS(parse_grade_list("good,"), InputError);
  for (auto g : {Grade::kExcellent, Grade::kGood, Grade::kAverage, Grade::kBad, Grade::kTerrible})
    CHECK(grade_from_name(grade_name(g)) == g);
}

TEST_CASE("teacher replies: what becomes a trace and why others do not", "[traces]") {
  const std::string good = "<think>\nTP53 loss lowers CDKN1A.\n</think>\n<answer>downregulated</answer>";
  auto c = check_trace("Sure, here it is.\n" + good + "\nHope this helps.", Label::kDown, "stop");
  CHECK(c.reason == "");
  CHECK(c.trace == good);  // text around the trace is dropped
  CHECK(check_trace("<THINK>x</Think><Answer>Down-regulated</ANSWER>", Label::kDown, "stop").reason == "");

  CHECK(check_trace(good, Label::kDown, "length").reason == "truncated");
  CHECK(check_trace("TP53 loss lowers CDKN1A. <answer>downregulated</answer>", Label::kDown, "stop").reason ==
        "format");
  CHECK(check_trace("<answer>downregulated</answer><think>x</think>", Label::kDown, "stop").reason == "format");
  CHECK(check_trace("<think>x</think> downregulated", Label::kDown, "stop").reason == "format");
  CHECK(check_trace("<think> \n </think><answer>downregulated</answer>", Label::kDown, "stop").reason ==
        "empty_reasoning");
  CHECK(check_trace(good, Label::kUp, "stop").reason == "answer_mismatch");
  CHECK(check_trace("<think>x</think><answer>up or down</answer>", Label::kUp, "stop").reason == "answer_mismatch");
  CHECK(check_trace("<think>Given the measured outcome, it must fall.</think><answer>downregulated</answer>",
                    Label::kDown, "stop")
            .reason == "leak");
  // Between the reasoning and the answer is training text too.
  CHECK(check_trace("<think>X falls.</think>\nAs the Measured Outcome says, <answer>downregulated</answer>",
                    Label::kDown, "stop")
            .reason == "leak");
  // Around the trace is dropped, so it may say anything.
  CHECK(check_trace(good + "\n(The measured outcome agreed.)", Label::kDown, "stop").reason == "");
}

TEST_CASE("teacher replies with the reasoning apart: it becomes the <think> block", "[traces]") {
  CHECK(teacher_text("<answer>upregulated</answer>", "") == "<answer>upregulated</answer>");
  CHECK(teacher_text(" <answer>upregulated</answer>\n", "\n Loss of X frees Y. \n") ==
        "<think>\nLoss of X frees Y.\n</think>\n<answer>upregulated</answer>");
  // A text with its own reasoning keeps it; the separate reasoning is not added.
  CHECK(teacher_text("<THINK>own</THINK><answer>up</answer>", "hidden") == "<THINK>own</THINK><answer>up</answer>");
  CHECK(teacher_text("<answer>up</answer>", " \n ") == "<answer>up</answer>");
  // The template opened the block in the prompt: the reply starts inside it.
  CHECK(teacher_text("Loss of X frees Y.\n</think>\n<answer>up</answer>\n", "") ==
        "<think>\nLoss of X frees Y.\n</think>\n<answer>up</answer>");
  CHECK(check_trace(teacher_text("Loss of X frees Y.</think><answer>upregulated</answer>", ""), Label::kUp, "stop")
            .reason == "");
  const auto c = check_trace(teacher_text("<answer>upregulated</answer>", "Loss of X frees Y."), Label::kUp, "stop");
  CHECK(c.reason == "");
  CHECK(c.trace == "<think>\nLoss of X frees Y.\n</think>\n<answer>upregulated</answer>");
}

TEST_CASE("trace prompts: built-ins render; files are checked before any request", "[traces]") {
  const TraceQuestion q{"Does {x} change?", "upregulated", "rpe1", "TP53", "CDKN1A"};
  const auto teacher = TracePrompt::load("teacher", TracePrompt::Role::kTeacher).render(q);
  REQUIRE(teacher.size() == 2);
  CHECK(teacher[0].first == "system");
  CHECK(teacher[0].second.find("<answer>upregulated</answer>") != std::string::npos);
  CHECK(teacher[1].second == "Does {x} change?\n\nMeasured outcome (for you only): upregulated");
  const auto judge = TracePrompt::load("judge", TracePrompt::Role::kJudge).render(q, "<think>T</think>");
  CHECK(judge[1].second.find("Candidate explanation:\n<think>T</think>") != std::string::npos);

  const auto custom = TracePrompt::parse("# c\n[user]\n{cell_type}: {pert} -> {gene}? {label}\n\n", "f",
                                         TracePrompt::Role::kTeacher)
                          .render(q);
  REQUIRE(custom.size() == 1);
  CHECK(custom[0] == std::pair<std::string, std::string>{
                         "user", "RPE1 (hTERT-immortalized retinal pigment epithelial cell line): TP53 -> CDKN1A? "
                                 "upregulated"});
  using R = TracePrompt::Role;
  CHECK_THROWS_WITH(TracePrompt::parse("[user]\n{question}", "j", R::kJudge), Catch::Contains("{trace}"));
  CHECK_THROWS_WITH(TracePrompt::parse("[user]\n{trace}", "t", R::kTeacher), Catch::Contains("{trace}"));
  CHECK_THROWS_WITH(TracePrompt::parse("[user]\n{qestion}", "t", R::kTeacher),
                    Catch::Contains("unknown placeholder {qestion}"));
  CHECK_THROWS_WITH(TracePrompt::parse("[system]\nx", "t", R::kTeacher), Catch::Contains("empty [user]"));
  CHECK_THROWS_WITH(TracePrompt::load("no-such-prompt", R::kJudge), Catch::Contains("--judge-prompt"));
}

TEST_CASE("trace inputs: rows as `data` writes them, each rule named", "[traces]") {
  test::TempDir dir("trace-inputs");
  auto write = [&](const std::string& text) {
    std::ofstream(dir.path + "/rows.jsonl") << text;
    return dir.path + "/rows.jsonl";
  };
  const std::string row =
      R"({"cell_type":"k562","pert":"A","gene":"B","label":"upregulated","messages":[{"role":"system","content":"S"},{"role":"user","content":"Q"},{"role":"assistant","content":"<answer>upregulated</answer>"}]})";
  const auto rows = read_trace_inputs(write(row + "\n\n" + R"({"cell_type":"k562","pert":"A","gene":"C","label":"not differentially expressed","messages":[{"role":"user","content":"Q2"}]})" + "\n"));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].prompt == std::vector<std::pair<std::string, std::string>>{{"system", "S"}, {"user", "Q"}});
  CHECK(rows[0].label == Label::kUp);
  CHECK(rows[1].question() == "Q2");
  CHECK(rows[1].origin.substr(rows[1].origin.size() - 2) == ":3");

  CHECK_THROWS_WITH(read_trace_inputs(write(row + "\n" + row + "\n")), Catch::Contains(":2: repeats the row of"));
  CHECK_THROWS_WITH(read_trace_inputs(write(R"({"cell_type":"k562","pert":"A","gene":"B","label":"up","messages":[{"role":"user","content":"Q"}]})")),
                    Catch::Contains("label 'up'"));
  CHECK_THROWS_WITH(read_trace_inputs(write(R"({"cell_type":"k562","pert":"A","gene":"B","label":"upregulated","messages":[{"role":"system","content":"S"}]})")),
                    Catch::Contains("must end with a user message"));
  CHECK_THROWS_WITH(read_trace_inputs(write(R"({"pert":"A","gene":"B","label":"upregulated","messages":[]})")),
                    Catch::Contains("\"cell_type\""));
  CHECK_THROWS_WITH(read_trace_inputs(write("{not json")), Catch::Contains(":1: not valid JSON"));
  CHECK_THROWS_WITH(read_trace_inputs(write("{\"pert\": 9e999}")), Catch::Contains(":1: not valid JSON"));
  CHECK_THROWS_WITH(read_trace_inputs(write("\n")), Catch::Contains("no rows"));
}

TEST_CASE("API addresses: SDK-style base URLs", "[traces]") {
  using P = std::pair<std::string, std::string>;
  CHECK(chat_completions_address("http://127.0.0.1:8080") == P{"http://127.0.0.1:8080", "/v1/chat/completions"});
  CHECK(chat_completions_address("http://h:1/v1/") == P{"http://h:1", "/v1/chat/completions"});
  CHECK(chat_completions_address("https://api.openai.com/v1") ==
        P{"https://api.openai.com", "/v1/chat/completions"});
  CHECK(chat_completions_address("https://x.org/openai/deployments/m") ==
        P{"https://x.org", "/openai/deployments/m/chat/completions"});
  CHECK(chat_completions_address("http://h/v1/chat/completions") == P{"http://h", "/v1/chat/completions"});
  CHECK_THROWS_WITH(chat_completions_address("localhost:8000"), Catch::Contains("http:// or https://"));
  CHECK_THROWS_WITH(chat_completions_address("http:///v1"), Catch::Contains("no host"));
  CHECK(is_retryable_status(429));
  CHECK(is_retryable_status(503));
  CHECK(is_retryable_status(0));
  CHECK_FALSE(is_retryable_status(400));
  CHECK_FALSE(is_retryable_status(401));
}

}  // namespace
}  // namespace synthpert::perturb
