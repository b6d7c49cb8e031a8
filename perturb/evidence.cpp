#include "perturb/evidence.h"

#include <algorithm>

#include "perturb/split.h"

namespace synthpert::perturb {

namespace {

std::string pair_key(const Row& r) { return r.pert + '\t' + r.gene; }

const char* short_name(Label l) { return l == Label::kUp ? "up" : l == Label::kDown ? "down" : "nde"; }

}  // namespace

void PairEvidence::add(const std::vector<Row>& rows) {
  for (const auto& r : rows) pairs_[pair_key(r)].emplace_back(r.cell_type, r.label);
}

std::string PairEvidence::describe(const Row& row) const {
  auto it = pairs_.find(pair_key(row));
  if (it == pairs_.end()) return "none";
  std::vector<Label> labels;
  for (const auto& [cell, label] : it->second)
    if (cell != row.cell_type) labels.push_back(label);
  if (labels.empty()) return "none";
  std::sort(labels.begin(), labels.end(), [](Label a, Label b) { return label_index(a) < label_index(b); });
  std::string out;
  for (Label l : labels) out += (out.empty() ? "" : " ") + std::string(short_name(l));
  return out;
}

void PairEvidence::attach(std::vector<Row>& rows) const {
  for (auto& r : rows) r.evidence = describe(r);
}

void attach_split_evidence(const SplitData& data, std::vector<Row>& rows) {
  PairEvidence ev;
  ev.add(data.train);
  ev.add(data.other_train);
  ev.attach(rows);
}

}  // namespace synthpert::perturb
