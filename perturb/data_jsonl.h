// PerturbQA rows as JSONL records (`synthpert data` output, `traces` input):
//   {"cell_type","pert","gene","label","messages":[{"role","content"},...]}
// messages hold the template's system turn (if any) and user turn, plus the
// true answer as an assistant turn when asked (direct-answer training data).
#pragma once

#include <nlohmann/json.hpp>

#include "perturb/data.h"
#include "perturb/prompt.h"

namespace synthpert::perturb {

nlohmann::json row_to_json(const Row& row, const PromptTemplate& tmpl, bool with_answer);

// The system (if any) and user messages of a row, as role/content pairs.
std::vector<std::pair<std::string, std::string>> prompt_messages(const Row& row, const PromptTemplate& tmpl);

}  // namespace synthpert::perturb
