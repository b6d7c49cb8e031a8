#include "perturb/data_jsonl.h"

namespace synthpert::perturb {

std::vector<std::pair<std::string, std::string>> prompt_messages(const Row& r, const PromptTemplate& t) {
  std::vector<std::pair<std::string, std::string>> m;
  if (!t.system.empty()) m.emplace_back("system", t.render_system(r.cell_type, r.pert, r.gene, r.context));
  m.emplace_back("user", t.render_user(r.cell_type, r.pert, r.gene, r.context));
  return m;
}

nlohmann::json row_to_json(const Row& r, const PromptTemplate& t, bool with_answer) {
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& [role, content] : prompt_messages(r, t)) messages.push_back({{"role", role}, {"content", content}});
  if (with_answer) messages.push_back({{"role", "assistant"}, {"content", t.render_answer(r.label)}});
  // The template travels with the row, so `train` gives a conversation
  // without a system turn the one this template has (none for compact).
  return {{"cell_type", r.cell_type}, {"pert", r.pert},     {"gene", r.gene},
          {"label", label_name(r.label)}, {"messages", messages}, {"prompt_template", t.name}};
}

}  // namespace synthpert::perturb
