#include "perturb/trace_review.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "common/error.h"
#include "perturb/answer_parser.h"
#include "perturb/ascii_text.h"

namespace synthpert::perturb {

namespace {

const std::array<std::string, 5> kGradeNames = {"excellent", "good", "average", "bad", "terrible"};

// Phrases by which a reasoning reveals it was handed the outcome. Lower case.
// The teacher prompt forbids this; the judge should catch it too, but a run
// without a judge still needs the cheap check.
const std::array<const char*, 7> kLeakPhrases = {
    "measured outcome", "for you only", "outcome was given", "outcome provided", "given outcome",
    "told the outcome", "provided outcome"};

}  // namespace

const std::string& grade_name(Grade g) { return kGradeNames[static_cast<int>(g)]; }

std::optional<Grade> grade_from_name(std::string_view name) {
  for (size_t i = 0; i < kGradeNames.size(); ++i)
    if (name == kGradeNames[i]) return static_cast<Grade>(i);
  return std::nullopt;
}

std::set<Grade> parse_grade_list(const std::string& list) {
  std::set<Grade> grades;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    const std::string item = ascii_lower(trim_space(std::string_view(list).substr(pos, comma - pos)));
    const auto g = grade_from_name(item);
    SP_CHECK_INPUT(g, "--accept: '", item, "' is not a grade (excellent, good, average, bad, terrible)");
    grades.insert(*g);
    pos = comma + 1;
  }
  return grades;
}

std::optional<Grade> parse_grade(std::string_view reply) {
  const std::string text = ascii_lower(reply);
  const size_t open = text.rfind("<grade>");
  if (open != std::string::npos) {
    const size_t start = open + 7;
    const size_t close = text.find("</grade>", start);
    if (close == std::string::npos) return std::nullopt;
    return grade_from_name(trim_space(std::string_view(text).substr(start, close - start)));
  }
  std::string_view rest = trim_space(text);
  const size_t nl = rest.find_last_of('\n');
  std::string_view last = trim_space(nl == std::string_view::npos ? rest : rest.substr(nl + 1));
  while (!last.empty() && std::ispunct(static_cast<unsigned char>(last.back()))) last.remove_suffix(1);
  return grade_from_name(last);
}

TraceCheck check_trace(std::string_view reply, Label label, std::string_view finish_reason) {
  if (finish_reason == "length") return {"truncated", ""};
  const std::string text = ascii_lower(reply);
  const size_t think = text.find("<think>");
  const size_t think_end = think == std::string::npos ? think : text.find("</think>", think);
  const size_t answer = think_end == std::string::npos ? think_end : text.find("<answer>", think_end);
  const size_t answer_end = answer == std::string::npos ? answer : text.find("</answer>", answer);
  if (answer_end == std::string::npos) return {"format", ""};
  const std::string_view reasoning = trim_space(std::string_view(text).substr(think + 7, think_end - think - 7));
  if (reasoning.empty()) return {"empty_reasoning", ""};
  const std::string trace(trim_space(reply.substr(think, answer_end + 9 - think)));
  const auto parsed = parse_answer(trace);
  if (!parsed || *parsed != label) return {"answer_mismatch", trace};
  // The whole kept trace, the words between </think> and the answer included:
  // all of it becomes training text.
  const std::string kept = ascii_lower(trace);
  for (const char* phrase : kLeakPhrases)
    if (kept.find(phrase) != std::string::npos) return {"leak", trace};
  return {"", trace};
}

std::string teacher_text(std::string_view content, std::string_view reasoning) {
  const std::string lower = ascii_lower(content);
  // R1-style chat templates end the generation prompt with "<think>\n", so a
  // server without a reasoning parser returns the reasoning without its
  // opening tag: "...</think>\n<answer>up</answer>".
  if (lower.find("<think>") == std::string::npos && lower.find("</think>") != std::string::npos)
    return "<think>\n" + std::string(trim_space(content));
  const std::string_view thought = trim_space(reasoning);
  if (thought.empty() || lower.find("<think>") != std::string::npos) return std::string(content);
  return "<think>\n" + std::string(thought) + "\n</think>\n" + std::string(trim_space(content));
}

}  // namespace synthpert::perturb
