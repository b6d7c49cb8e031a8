#include "perturb/split.h"

#include <algorithm>

#include "common/error.h"
#include "common/hash.h"

namespace synthpert::perturb {

SplitSpec parse_split(const std::string& text) {
  SplitSpec s;
  const auto& cells = cell_lines();
  if (text == "default") return s;
  if (text.rfind("default:", 0) == 0) {
    std::string rest = text.substr(8);
    size_t pos = 0;
    while (pos <= rest.size()) {
      const size_t comma = rest.find(',', pos);
      const std::string c = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      SP_CHECK_INPUT(std::find(cells.begin(), cells.end(), c) != cells.end(), "--split ", text,
                     ": unknown cell line '", c, "' (k562, rpe1, hepg2, jurkat)");
      SP_CHECK_INPUT(std::find(s.cells.begin(), s.cells.end(), c) == s.cells.end(), "--split ", text,
                     ": cell line '", c, "' is named twice (its rows would be counted twice)");
      s.cells.push_back(c);
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    return s;
  }
  if (text.rfind("holdout:", 0) == 0) {
    s.holdout = true;
    s.held_out = text.substr(8);
    SP_CHECK_INPUT(std::find(cells.begin(), cells.end(), s.held_out) != cells.end(), "--split ", text,
                   ": unknown cell line '", s.held_out, "' (k562, rpe1, hepg2, jurkat)");
    return s;
  }
  throw InputError(str_cat("--split: expected default, default:CELL[,CELL] or holdout:CELL, got '", text, "'"));
}

SplitData load_split(const std::string& dir, const SplitSpec& spec) {
  SplitData out;
  out.holdout = spec.holdout;
  const auto& cells = spec.holdout || spec.cells.empty() ? cell_lines() : spec.cells;
  for (const auto& cell : cells) {
    CellData d = load_cell_line(dir, cell);
    out.inconsistent += d.inconsistent;
    out.dir_without_de += d.dir_without_de;
    for (auto& r : d.rows) {
      const bool to_test = spec.holdout ? cell == spec.held_out : r.test;
      (to_test ? out.test : out.train).push_back(std::move(r));
    }
  }
  if (!spec.holdout && !spec.cells.empty()) {
    for (const auto& cell : cell_lines()) {
      if (std::find(cells.begin(), cells.end(), cell) != cells.end()) continue;
      for (auto& r : load_cell_line(dir, cell).rows)
        if (!r.test) out.other_train.push_back(std::move(r));
    }
  }
  return out;
}

namespace {
uint64_t hash_str(uint64_t h, const std::string& s) { return splitmix64(fnv1a64(s, h) ^ 0xff); }
}  // namespace

std::vector<Row> subsample(const std::vector<Row>& rows, double fraction, uint64_t seed) {
  SP_CHECK_INPUT(fraction > 0 && fraction <= 1, "--fraction must be in (0, 1], got ", fraction);
  if (fraction == 1) return rows;
  const uint64_t threshold = static_cast<uint64_t>(fraction * 18446744073709551615.0);
  std::vector<Row> out;
  for (const auto& r : rows) {
    const uint64_t h = hash_str(hash_str(hash_str(splitmix64(seed), r.cell_type), r.pert), r.gene);
    if (h <= threshold) out.push_back(r);
  }
  return out;
}

void split_validation(const std::vector<Row>& rows, double fraction, uint64_t seed, std::vector<Row>& train,
                      std::vector<Row>& val) {
  SP_CHECK_INPUT(fraction >= 0 && fraction < 1, "validation fraction must be in [0, 1), got ", fraction);
  const uint64_t threshold = static_cast<uint64_t>(fraction * 18446744073709551615.0);
  train.clear();
  val.clear();
  for (const auto& r : rows) {
    // A different stream from subsample's, so the two choices are independent.
    const uint64_t h = hash_str(hash_str(splitmix64(seed ^ 0x5641u), r.cell_type), r.pert);
    (fraction > 0 && h <= threshold ? val : train).push_back(r);
  }
}

void check_part(const std::string& part, double val_fraction) {
  SP_CHECK_INPUT(part == "test" || part == "val" || part == "train", "--part: expected test, val or train, got '",
                 part, "'");
  SP_CHECK_INPUT(val_fraction >= 0 && val_fraction < 1, "--val-fraction must be in [0, 1), got ", val_fraction);
  SP_CHECK_INPUT(part != "val" || val_fraction > 0,
                 "--part val: no validation rows at --val-fraction 0 (the demo holds out 0.05 of the training "
                 "(cell line, pert) groups, chosen by its --seed: pass --val-fraction 0.05 --val-seed SEED)");
}

SplitPart select_part(const SplitData& data, const std::string& part, double val_fraction, uint64_t val_seed) {
  check_part(part, val_fraction);
  SplitPart p;
  if (part == "test") {
    p.rows = data.test;
    return p;
  }
  std::vector<Row> val;
  split_validation(data.train, val_fraction, val_seed, p.fit_rows, val);
  if (part == "val") {
    p.rows = std::move(val);
    p.fit = SplitPart::Fit::kOthers;
  } else {
    p.rows = p.fit_rows;
    p.fit = SplitPart::Fit::kOutOfFold;
  }
  return p;
}

}  // namespace synthpert::perturb
