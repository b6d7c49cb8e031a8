// The teacher and judge prompts of `synthpert traces`: built-in files under
// perturb/prompts/traces/ ("teacher", "judge") or a user's file in the same
// format (sections "[system]" and "[user]", '#' comments before the first).
//
// Placeholders: {question} (the student's question as the student sees it),
// {label} (the measured outcome), {cell_type} (with a description), {cell_id},
// {pert}, {gene}; the judge prompt also {trace} (the teacher's explanation).
// Values are inserted verbatim: braces inside a question or trace are text.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace synthpert::perturb {

struct TraceQuestion {
  std::string question, label, cell_id, pert, gene;
};

class TracePrompt {
 public:
  enum class Role { kTeacher, kJudge };

  // A built-in name ("teacher", "judge") or a file path. A teacher prompt may
  // not use {trace}; a judge prompt must.
  static TracePrompt load(const std::string& name_or_path, Role role);
  static TracePrompt parse(const std::string& text, const std::string& source, Role role);

  // (role, content) chat messages; the system turn only when the file has one.
  // `trace` is ignored by teacher prompts.
  std::vector<std::pair<std::string, std::string>> render(const TraceQuestion& q,
                                                          const std::string& trace = "") const;

  const std::string& name() const { return name_; }
  // Changes when the prompt's text does, wherever the file lies.
  std::string digest() const;

 private:
  std::string name_, system_, user_;
};

}  // namespace synthpert::perturb
