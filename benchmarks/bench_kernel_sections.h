// Sections of bench_kernels that live in their own files (bench_nf4.cpp, ...):
// each times its kernels, runs its own python peer script in the same run,
// and returns result rows (DESIGN.md section 6.9 shape) and a markdown table.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "benchmarks/bench_util.h"

namespace synthpert::bench {

struct SectionContext {
  const Timing* timing = nullptr;
  double hbm_peak = 0;   // bytes/s
  std::string python;    // interpreter for the peer scripts
  bool peer = true;      // false: rows without a peer
  int iters = 20;
  std::string tmp_stem;  // prefix for the peers' temporary JSON files
};

struct SectionOutput {
  nlohmann::json rows = nlohmann::json::array();
  std::string markdown;

  // An empty section whose markdown table stands under "### title".
  static SectionOutput titled(const std::string& title);
  // Adds a result_row to rows and to the table, and echoes its line on
  // stderr as progress.
  void add(const nlohmann::json& row);
};

SectionOutput bench_nf4_section(const SectionContext& ctx);
SectionOutput bench_adamw_section(const SectionContext& ctx);
SectionOutput bench_lora_section(const SectionContext& ctx);
SectionOutput bench_decode_section(const SectionContext& ctx);
SectionOutput bench_continued_section(const SectionContext& ctx);

// Runs benchmarks/<script> with `args` (plus --iters and --out) when the
// context wants a peer; an empty object otherwise or on failure.
inline nlohmann::json run_section_peer(const SectionContext& ctx, const std::string& script, const std::string& args) {
  if (!ctx.peer) return nlohmann::json::object();
  const std::string out = ctx.tmp_stem + "." + script + ".tmp.json";
  const std::string cmd = ctx.python + " " + std::string(SYNTHPERT_SOURCE_DIR) + "/benchmarks/" + script + " " + args +
                          " --iters " + std::to_string(ctx.iters) + " --out " + out;
  return run_peer(cmd, out);
}

// A result row; a missing peer value (< 0) gives null peer and ratio.
// `higher_is_better`: GB/s-like units (ratio ours/peer); else time-like
// (ratio peer/ours), so ratio > 1 always means ours is better.
inline nlohmann::json result_row(const std::string& name, const std::string& unit, double ours, double peer,
                                 const std::string& peer_name, bool higher_is_better) {
  nlohmann::json row = {{"name", name}, {"unit", unit}, {"ours", ours}};
  if (peer > 0) {
    row["peer"] = peer;
    row["peer_name"] = peer_name;
    row["ratio"] = higher_is_better ? ours / peer : peer / ours;
  } else {
    row["peer"] = nullptr;
    row["peer_name"] = nullptr;
    row["ratio"] = nullptr;
  }
  return row;
}

// "| name | unit | ours | peer | ratio |" for a row made by result_row.
inline std::string markdown_line(const nlohmann::json& row) {
  char buf[512];
  if (row["peer"].is_null())
    std::snprintf(buf, sizeof buf, "| %s | %s | %.3f | - | - | - |\n", row["name"].get<std::string>().c_str(),
                  row["unit"].get<std::string>().c_str(), row["ours"].get<double>());
  else
    std::snprintf(buf, sizeof buf, "| %s | %s | %.3f | %s | %.3f | %.2f |\n", row["name"].get<std::string>().c_str(),
                  row["unit"].get<std::string>().c_str(), row["ours"].get<double>(),
                  row["peer_name"].get<std::string>().c_str(), row["peer"].get<double>(), row["ratio"].get<double>());
  return buf;
}

inline constexpr const char* kSectionTableHeader = "| case | unit | ours | peer | peer value | ratio (>1: ours better) |\n|---|---|---|---|---|---|\n";

inline SectionOutput SectionOutput::titled(const std::string& title) {
  SectionOutput s;
  s.markdown = "\n### " + title + "\n\n" + kSectionTableHeader;
  return s;
}

inline void SectionOutput::add(const nlohmann::json& row) {
  rows.push_back(row);
  const std::string line = markdown_line(row);
  markdown += line;
  std::fprintf(stderr, "%s", line.c_str());
}

// Peer value at json[key1][key2] in ms, or -1.
inline double peer_ms(const nlohmann::json& j, const std::string& key1, const std::string& key2) {
  if (!j.contains(key1) || !j[key1].contains(key2) || !j[key1][key2].is_number()) return -1;
  return j[key1][key2].get<double>();
}

}  // namespace synthpert::bench
