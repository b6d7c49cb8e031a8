#include "perturb/prompt.h"

#include <map>

#include "common/error.h"
#include "common/fs.h"
#include "common/settings_diff.h"
#include "common/utf8.h"
#include "perturb/prompts_embedded.h"
#include "perturb/template_text.h"

namespace synthpert::perturb {

namespace {

std::map<std::string, std::string> row_vars(const std::string& cell, const std::string& pert,
                                            const std::string& gene, const RowContext& c) {
  auto or_none = [](const std::string& s) { return s.empty() ? std::string("none") : s; };
  return {{"cell_type", cell_description(cell)}, {"cell_id", cell}, {"pert", pert}, {"gene", gene},
          {"evidence", or_none(c.evidence)}, {"pert_effect", or_none(c.pert_effect)},
          {"gene_profile", or_none(c.gene_profile)}, {"gene_here", or_none(c.gene_here)},
          {"gene_all", or_none(c.gene_all)}, {"gene_similar", or_none(c.gene_similar)}};
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::vector<std::string> builtin_prompt_names() {
  std::vector<std::string> names;
  for (const auto& p : embedded_prompts()) names.push_back(p.first);
  return names;
}

std::string prompt_template_choices() {
  std::string out;
  for (const auto& n : builtin_prompt_names()) out += n + " | ";
  return out + "FILE";
}

std::string cell_description(const std::string& id) {
  static const std::map<std::string, std::string> d = {
      {"k562", "K562 (chronic myelogenous leukemia cell line)"},
      {"rpe1", "RPE1 (hTERT-immortalized retinal pigment epithelial cell line)"},
      {"hepg2", "HepG2 (hepatocellular carcinoma cell line)"},
      {"jurkat", "Jurkat (T-cell acute lymphoblastic leukemia cell line)"}};
  auto it = d.find(id);
  return it == d.end() ? id : it->second;
}

PromptTemplate PromptTemplate::load(const std::string& name_or_path) {
  for (const auto& [name, text] : embedded_prompts())
    if (name == name_or_path) return parse(text, name);
  SP_CHECK_INPUT(path_exists(name_or_path), "--prompt-template ", name_or_path,
                 ": neither a built-in template (", join_names(builtin_prompt_names()), ") nor a file");
  return parse(read_file(name_or_path), name_or_path);
}

PromptTemplate PromptTemplate::parse(const std::string& text, const std::string& source) {
  // Its text goes into JSON rows and requests, which must be UTF-8.
  SP_CHECK_INPUT(is_valid_utf8(text), source, ": not UTF-8 text");
  const auto sections = parse_sections(text, {"[system]", "[user]", "[answer]"}, source);
  PromptTemplate t;
  t.name = source;
  t.system = sections[0];
  t.user = sections[1];
  t.answer = sections[2];
  SP_CHECK_INPUT(!t.user.empty(), source, ": missing or empty [user] section");
  SP_CHECK_INPUT(t.answer.find("{label}") != std::string::npos, source,
                 ": the [answer] section must contain {label}");
  // Render once so an unknown placeholder fails at load time, not mid-evaluation.
  t.render_system("x", "x", "x");
  t.render_user("x", "x", "x");
  t.render_answer(Label::kUp);
  return t;
}

std::string PromptTemplate::render_system(const std::string& cell, const std::string& pert,
                                          const std::string& gene, const RowContext& context) const {
  return substitute(system, row_vars(cell, pert, gene, context), name + " [system]");
}

std::string PromptTemplate::render_user(const std::string& cell, const std::string& pert,
                                        const std::string& gene, const RowContext& context) const {
  return substitute(user, row_vars(cell, pert, gene, context), name + " [user]");
}

bool PromptTemplate::uses_evidence() const {
  for (const char* key :
       {"{evidence}", "{pert_effect}", "{gene_profile}", "{gene_here}", "{gene_all}", "{gene_similar}"})
    if (system.find(key) != std::string::npos || user.find(key) != std::string::npos) return true;
  return false;
}

Row blind_view(const Row& row) {
  Row out = row;
  out.pert = kBlindName;
  out.gene = kBlindName;
  return out;
}

std::string PromptTemplate::render_answer(Label label) const {
  return substitute(answer, {{"label", label_name(label)}}, name + " [answer]");
}

std::string PromptTemplate::digest() const { return content_digest(system + '\0' + user + '\0' + answer); }

}  // namespace synthpert::perturb
