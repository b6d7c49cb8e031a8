// What `synthpert traces` checks before a teacher's explanation may become
// training data, and how it reads a judge's grade.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "perturb/labels.h"

namespace synthpert::perturb {

// The judge's five-point scale, best first.
enum class Grade : int { kExcellent = 0, kGood, kAverage, kBad, kTerrible };

const std::string& grade_name(Grade g);
std::optional<Grade> grade_from_name(std::string_view name);  // exact, lower case
// "excellent,good" -> {kExcellent, kGood}; an unknown or empty entry is an InputError.
std::set<Grade> parse_grade_list(const std::string& list);

// The grade in a judge's reply: the last <grade>NAME</grade> (case and
// surrounding spaces ignored); without tags, the last non-empty line if it is
// a grade name alone (optionally with trailing punctuation). Anything else,
// including a tag naming no grade, is nullopt: the run records the reply as
// ungraded rather than guess.
std::optional<Grade> parse_grade(std::string_view reply);

// A teacher reply checked against the true label.
struct TraceCheck {
  // "" when usable, else why not:
  //   "truncated"        the reply hit its token limit (finish_reason "length")
  //   "format"           no <think>...</think> followed by <answer>...</answer>
  //   "empty_reasoning"  nothing inside <think>
  //   "answer_mismatch"  the answer names another label, or none
  //   "leak"             the reasoning says the outcome was given to it
  std::string reason;
  // The usable trace: the reply from <think> to </answer> (what a student is
  // trained to write; text around it is dropped).
  std::string trace;
};

TraceCheck check_trace(std::string_view reply, Label label, std::string_view finish_reason);

// A teacher's reply as one text. Reasoning models behind DeepSeek's API or
// vLLM's reasoning parsers return their reasoning apart from the visible text
// (`reasoning_content`); when there is such reasoning and the text has no
// <think> of its own, it becomes the text's <think> block. Otherwise the
// text alone.
std::string teacher_text(std::string_view content, std::string_view reasoning);

}  // namespace synthpert::perturb
