#include "perturb/similar_perts.h"

#include <algorithm>
#include <cmath>

namespace synthpert::perturb {

namespace {
std::string line_gene(const std::string& cell, const std::string& gene) { return cell + '\t' + gene; }
}  // namespace

int SimilarPerts::line_id(const std::string& cell) {
  auto [it, fresh] = line_ids_.emplace(cell, static_cast<int>(line_ids_.size()));
  if (fresh) {
    trained_.emplace_back(pert_names_.size(), 0);
    for (auto& per_line : pert_de_) per_line.push_back(0);
  }
  return it->second;
}

void SimilarPerts::add(const std::vector<Row>& rows) {
  cache_.clear();
  for (const auto& r : rows) {
    const int line = line_id(r.cell_type);
    auto [pit, new_pert] = pert_ids_.emplace(r.pert, static_cast<int>(pert_names_.size()));
    if (new_pert) {
      pert_names_.push_back(r.pert);
      pert_columns_.emplace_back();
      pert_de_.emplace_back(line_ids_.size(), 0);
      for (auto& t : trained_) t.push_back(0);
    }
    const int pert = pit->second;
    trained_[line][pert] = 1;
    const std::string key = line_gene(r.cell_type, r.gene);
    outcomes_[key][pert] = r.label;
    if (r.label == Label::kNde) continue;
    auto [cit, new_column] = column_ids_.emplace(key, static_cast<int>(column_line_.size()));
    if (new_column) {
      column_line_.push_back(line);
      column_perts_.emplace_back();
    }
    column_perts_[cit->second].push_back(pert);
    pert_columns_[pert].push_back(cit->second);
    ++pert_de_[pert][line];
  }
}

const std::vector<int>& SimilarPerts::neighbour_ids(int line, int pert) {
  const int64_t key = static_cast<int64_t>(line) * static_cast<int64_t>(pert_names_.size()) + pert;
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  // DE rows of each pert outside `line`, and the pairs shared with `pert` there.
  auto de_outside = [&](int p) {
    int64_t n = 0;
    for (size_t l = 0; l < pert_de_[p].size(); ++l)
      if (static_cast<int>(l) != line) n += pert_de_[p][l];
    return n;
  };
  std::unordered_map<int, int64_t> shared;
  for (int col : pert_columns_[pert]) {
    if (column_line_[col] == line) continue;
    for (int q : column_perts_[col])
      if (q != pert && trained_[line][q]) ++shared[q];
  }
  const double own = static_cast<double>(de_outside(pert));
  std::vector<std::pair<double, int>> scored;
  for (const auto& [q, both] : shared) {
    const double b = static_cast<double>(both);
    scored.emplace_back(b / (own + static_cast<double>(de_outside(q)) - b), q);
  }
  std::sort(scored.begin(), scored.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : pert_names_[a.second] < pert_names_[b.second];
  });
  std::vector<int> out;
  for (size_t i = 0; i < scored.size() && out.size() < static_cast<size_t>(kNeighbours); ++i)
    out.push_back(scored[i].second);
  return cache_.emplace(key, std::move(out)).first->second;
}

std::vector<std::string> SimilarPerts::neighbours(const std::string& cell, const std::string& pert) {
  std::vector<std::string> out;
  auto lit = line_ids_.find(cell);
  auto pit = pert_ids_.find(pert);
  if (lit == line_ids_.end() || pit == pert_ids_.end()) return out;
  for (int q : neighbour_ids(lit->second, pit->second)) out.push_back(pert_names_[q]);
  return out;
}

int SimilarPerts::count_bucket(int64_t n) { return n >= 9 ? 5 : n >= 5 ? 4 : n >= 3 ? 3 : static_cast<int>(n); }

int SimilarPerts::de_bucket(double share) {
  // The tolerance keeps a share that is a tenth up to rounding (0.3, 0.7) in its own step.
  return share <= 0 ? 0 : std::clamp(static_cast<int>(std::ceil(share * 10 - 1e-9)), 1, 10);
}

int SimilarPerts::up_bucket(double share) { return std::min(4, static_cast<int>(share * 5 + 1e-9)); }

std::string SimilarPerts::describe(const Row& row) {
  auto lit = line_ids_.find(row.cell_type);
  auto pit = pert_ids_.find(row.pert);
  auto oit = outcomes_.find(line_gene(row.cell_type, row.gene));
  if (lit == line_ids_.end() || pit == pert_ids_.end() || oit == outcomes_.end()) return "";
  int64_t n = 0, de = 0, up = 0;
  for (int q : neighbour_ids(lit->second, pit->second)) {
    auto lab = oit->second.find(q);
    if (lab == oit->second.end()) continue;
    ++n;
    de += lab->second != Label::kNde;
    up += lab->second == Label::kUp;
  }
  if (n == 0) return "";
  std::string out = "sn" + std::to_string(count_bucket(n)) + " sde" +
                    std::to_string(de_bucket(static_cast<double>(de) / static_cast<double>(n)));
  if (de > 0) out += " sup" + std::to_string(up_bucket(static_cast<double>(up) / static_cast<double>(de)));
  return out;
}

}  // namespace synthpert::perturb
