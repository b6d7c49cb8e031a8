// The rows `synthpert traces` explains: JSONL as `synthpert data` writes it,
//   {"cell_type","pert","gene","label","messages":[{"role","content"},...]}
// The messages are the student's prompt (a system turn if the template has
// one, then the user question); an assistant turn, as `data --with-answer`
// appends, is dropped: the teacher's explanation takes its place.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "perturb/labels.h"

namespace synthpert::perturb {

struct TraceInput {
  std::string cell_type, pert, gene;
  Label label = Label::kNde;
  std::vector<std::pair<std::string, std::string>> prompt;  // (role, content), ends with the user turn
  std::string origin;                                       // "FILE:LINE"

  // "cell_type\tpert\tgene": what identifies a row across resumed runs.
  std::string key() const { return cell_type + '\t' + pert + '\t' + gene; }
  const std::string& question() const { return prompt.back().second; }
};

// Reads and checks every line; an InputError names the line and the rule
// (missing field, unknown label, no user turn, a row repeated).
std::vector<TraceInput> read_trace_inputs(const std::string& path);

}  // namespace synthpert::perturb
