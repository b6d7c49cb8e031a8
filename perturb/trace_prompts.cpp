#include "perturb/trace_prompts.h"

#include <map>

#include "common/error.h"
#include "common/fs.h"
#include "common/settings_diff.h"
#include "perturb/prompt.h"
#include "perturb/prompts_embedded.h"
#include "perturb/template_text.h"

namespace synthpert::perturb {

namespace {

const char* role_flag(TracePrompt::Role role) {
  return role == TracePrompt::Role::kTeacher ? "--teacher-prompt" : "--judge-prompt";
}

}  // namespace

TracePrompt TracePrompt::load(const std::string& name_or_path, Role role) {
  for (const auto& [name, text] : embedded_trace_prompts())
    if (name == name_or_path) return parse(text, name, role);
  SP_CHECK_INPUT(path_exists(name_or_path), role_flag(role), " ", name_or_path,
                 ": neither a built-in prompt (teacher, judge) nor a file");
  return parse(read_file(name_or_path), name_or_path, role);
}

TracePrompt TracePrompt::parse(const std::string& text, const std::string& source, Role role) {
  const auto sections = parse_sections(text, {"[system]", "[user]"}, source);
  TracePrompt p;
  p.name_ = source;
  p.system_ = sections[0];
  p.user_ = sections[1];
  SP_CHECK_INPUT(!p.user_.empty(), source, ": missing or empty [user] section");
  const bool uses_trace = p.system_.find("{trace}") != std::string::npos ||
                          p.user_.find("{trace}") != std::string::npos;
  if (role == Role::kJudge)
    SP_CHECK_INPUT(uses_trace, source, ": a judge prompt must show the explanation it grades ({trace})");
  else
    SP_CHECK_INPUT(!uses_trace, source, ": a teacher prompt has no {trace} to show (it writes it)");
  // Render once so an unknown placeholder fails before any request is sent.
  p.render({"q", "upregulated", "k562", "A", "B"}, "t");
  return p;
}

std::string TracePrompt::digest() const { return content_digest(system_ + '\0' + user_); }

std::vector<std::pair<std::string, std::string>> TracePrompt::render(const TraceQuestion& q,
                                                                     const std::string& trace) const {
  const std::map<std::string, std::string> vars = {
      {"question", q.question}, {"label", q.label},     {"cell_type", cell_description(q.cell_id)},
      {"cell_id", q.cell_id},   {"pert", q.pert},       {"gene", q.gene},
      {"trace", trace}};
  std::vector<std::pair<std::string, std::string>> messages;
  if (!system_.empty()) messages.emplace_back("system", substitute(system_, vars, name_ + " [system]"));
  messages.emplace_back("user", substitute(user_, vars, name_ + " [user]"));
  return messages;
}

}  // namespace synthpert::perturb
