// Prompt templates for PerturbQA questions (files under perturb/prompts/, embedded
// in the binary, or a user's own file with the same format).
//
// Format: sections opened by a line "[system]", "[user]" or "[answer]"; '#' lines
// before the first section are comments. [user] and [answer] are required.
// Placeholders: {cell_type} (cell line with a short description), {cell_id},
// {pert}, {gene}, {evidence} (the pair's outcomes in other cell lines'
// training rows, perturb/evidence.h; "none" when absent), {pert_effect} (the
// pert's DE and up shares in other cell lines' training rows as bucket words;
// "none" when absent), {gene_profile} (the same for the target gene),
// {gene_here} (the target gene's shares in the row's own cell line over other
// perts' training rows; default splits only), {gene_all} (its shares over
// every cell line's training rows, the own line by the same fold rule),
// {gene_similar} (its outcomes in its own line under the perts most like the
// row's, perturb/similar_perts.h; default splits only);
// [answer] also {label}. The section text is taken verbatim
// between its header line and the next header (the final newline is dropped),
// so leading spaces in [answer] matter: they decide how the label tokenizes.
#pragma once

#include <string>
#include <vector>

#include "perturb/data.h"
#include "perturb/labels.h"

namespace synthpert::perturb {

struct PromptTemplate {
  std::string name;    // built-in name or file path
  std::string system;  // may be empty (no system turn)
  std::string user;
  std::string answer;  // contains {label}

  // "reasoning" or "compact" (built in), else a path to a template file.
  static PromptTemplate load(const std::string& name_or_path);
  static PromptTemplate parse(const std::string& text, const std::string& source);

  std::string render_system(const std::string& cell, const std::string& pert, const std::string& gene,
                            const RowContext& context = {}) const;
  std::string render_user(const std::string& cell, const std::string& pert, const std::string& gene,
                          const RowContext& context = {}) const;
  // Whether the system or user text uses a RowContext placeholder ({evidence},
  // {pert_effect}, {gene_profile}, {gene_here}, {gene_all}, {gene_similar}), so rows need it attached.
  bool uses_evidence() const;
  std::string render_answer(Label label) const;
  // A digest of the three sections' text (common/settings_diff.h), so a
  // resumed run notices a template file edited under the same name.
  std::string digest() const;
};

// The name-blind view of a row: a copy whose pert and gene are written
// kBlindName, its RowContext kept. A student trained on some rows in this view
// learns to answer from the counts in its prompt alone, which rank rows across
// genes better than names do on a cell line the names were never measured in;
// scoring both views and averaging them keeps what the names add within a gene
// (eval's blind_view, demo's blind_fraction).
inline constexpr const char* kBlindName = "?";
Row blind_view(const Row& row);

// Names of the built-in templates.
std::vector<std::string> builtin_prompt_names();
// "compact | compact-all | ... | FILE": what --prompt-template accepts, for --help.
std::string prompt_template_choices();

// "RPE1 (retinal pigment epithelial cell line, hTERT-immortalised)" etc.; the id itself if unknown.
std::string cell_description(const std::string& cell_id);

}  // namespace synthpert::perturb
