#include "perturb/data.h"

#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <unordered_map>

#include "common/error.h"
#include "common/fs.h"
#include "common/utf8.h"

namespace synthpert::perturb {

const std::vector<std::string>& cell_lines() {
  static const std::vector<std::string> cells = {"k562", "rpe1", "hepg2", "jurkat"};
  return cells;
}

std::string resolve_data_dir(const std::string& flag) {
  auto has_csvs = [](const std::string& d) { return path_exists(path_join(d, "k562-de.csv")) ||
                                                    path_exists(path_join(d, "rpe1-de.csv")); };
  if (!flag.empty()) {
    SP_CHECK_INPUT(has_csvs(flag), "--perturbqa ", flag, ": no PerturbQA CSVs ({cell}-de.csv) there");
    return flag;
  }
  if (const char* env = std::getenv("PERTURBQA_DIR"); env && *env) {
    SP_CHECK_INPUT(has_csvs(env), "$PERTURBQA_DIR=", env, ": no PerturbQA CSVs ({cell}-de.csv) there");
    return env;
  }
  const std::string fallback = "../shared/perturbqa";
  SP_CHECK_INPUT(has_csvs(fallback),
                 "PerturbQA data not found: pass --perturbqa DIR, set $PERTURBQA_DIR, or place it at ",
                 fallback);
  return fallback;
}

void check_not_data_file(const std::string& out, const std::string& dir, const std::string& flag) {
  for (const auto& cell : cell_lines())
    for (const char* kind : {"-de.csv", "-dir.csv"}) {
      const std::string csv = path_join(dir, cell + kind);
      std::error_code ec;
      SP_CHECK_INPUT(!std::filesystem::equivalent(out, csv, ec), flag, " ", out, " is the PerturbQA file ", csv,
                     ", which it would overwrite; choose another path");
    }
}

namespace {

// Splits a CSV data line of exactly four plain fields (no quoting in these files).
bool split4(std::string_view line, std::string_view (&f)[4]) {
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) return false;
    f[i] = line.substr(start, comma - start);
    start = comma + 1;
  }
  f[3] = line.substr(start);
  return f[3].find(',') == std::string_view::npos;
}

// Calls fn(line_number, fields) for each data line after checking the header.
template <typename Fn>
void for_each_record(const std::string& path, Fn&& fn) {
  const std::string text = read_text_file(path);
  std::string_view rest(text);
  int64_t line_no = 0;
  bool header = true;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (header) {
      SP_CHECK_INPUT(line == "pert,gene,label,split", path, ":1: expected header 'pert,gene,label,split', got '",
                     line, "'");
      header = false;
      continue;
    }
    if (line.empty()) continue;
    std::string_view f[4];
    SP_CHECK_INPUT(split4(line, f), path, ":", line_no, ": expected 4 comma-separated fields, got '", line, "'");
    SP_CHECK_INPUT(!f[0].empty() && !f[1].empty(), path, ":", line_no, ": empty pert or gene");
    // A name is compared byte for byte with other files' and printed in
    // prompts and JSON, so it must be UTF-8 with no padding around it.
    for (int i = 0; i < 2; ++i) {
      SP_CHECK_INPUT(is_valid_utf8(f[i]), path, ":", line_no, ": ", i == 0 ? "pert" : "gene", " is not UTF-8 text");
      const auto padded = [](char c) { return c == ' ' || c == '\t'; };
      SP_CHECK_INPUT(!padded(f[i].front()) && !padded(f[i].back()), path, ":", line_no, ": ", i == 0 ? "pert" : "gene",
                     " '", f[i], "' has spaces around it (PerturbQA CSVs have none)");
    }
    // These files never quote; a quoted field would keep its quotes in the
    // name and silently miss every other file's spelling of that gene.
    for (const auto& field : f)
      SP_CHECK_INPUT(field.find('"') == std::string_view::npos, path, ":", line_no,
                     ": quoted field ", field, " (PerturbQA CSVs have plain fields; remove the quotes)");
    SP_CHECK_INPUT(f[2] == "0" || f[2] == "1", path, ":", line_no, ": label must be 0 or 1, got '", f[2], "'");
    SP_CHECK_INPUT(f[3] == "train" || f[3] == "test", path, ":", line_no,
                   ": split must be train or test, got '", f[3], "'");
    fn(line_no, f);
  }
  SP_CHECK_INPUT(!header, path, ": empty file (no header)");
}

std::string pair_key(std::string_view pert, std::string_view gene) {
  std::string k;
  k.reserve(pert.size() + gene.size() + 1);
  k.append(pert).push_back('\t');
  k.append(gene);
  return k;
}

}  // namespace

CellData load_cell_line(const std::string& dir, const std::string& cell) {
  const std::string de_path = path_join(dir, cell + "-de.csv");
  const std::string dir_path = path_join(dir, cell + "-dir.csv");
  SP_CHECK_INPUT(path_exists(de_path), de_path, ": not found");
  SP_CHECK_INPUT(path_exists(dir_path), dir_path, ": not found");

  std::unordered_map<std::string, bool> up;  // (pert, gene) -> direction is up
  for_each_record(dir_path, [&](int64_t line_no, std::string_view (&f)[4]) {
    const bool inserted = up.emplace(pair_key(f[0], f[1]), f[2] == "1").second;
    SP_CHECK_INPUT(inserted, dir_path, ":", line_no, ": duplicate pair ", f[0], ",", f[1]);
  });
  CellData data;
  data.cell_type = cell;
  int64_t matched_dir = 0;
  std::unordered_map<std::string, int64_t> seen;
  for_each_record(de_path, [&](int64_t line_no, std::string_view (&f)[4]) {
    Row r;
    r.cell_type = cell;
    r.pert = std::string(f[0]);
    r.gene = std::string(f[1]);
    r.test = f[3] == "test";
    const std::string key = pair_key(f[0], f[1]);
    const auto [it, fresh] = seen.emplace(key, line_no);
    SP_CHECK_INPUT(fresh, de_path, ":", line_no, ": duplicate pair ", f[0], ",", f[1], " (first on line ",
                   it->second, ")");
    if (f[2] == "1") {
      auto d = up.find(key);
      if (d == up.end()) {
        r.label = Label::kNde;
        ++data.inconsistent;
      } else {
        r.label = d->second ? Label::kUp : Label::kDown;
        ++matched_dir;
      }
    }
    data.rows.push_back(std::move(r));
  });
  data.dir_without_de = static_cast<int64_t>(up.size()) - matched_dir;
  return data;
}

}  // namespace synthpert::perturb
