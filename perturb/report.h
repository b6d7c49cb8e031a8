// Evaluation reports: a markdown page with the model beside the baselines
// (overall and per cell line), a confusion-matrix SVG and a score-comparison SVG.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace synthpert::perturb {

struct ReportInput {
  std::string title;
  std::string model_name = "model";
  nlohmann::json model;                          // compute_metrics() of the model
  std::map<std::string, nlohmann::json> baselines;  // name -> compute_metrics() on the same rows
  nlohmann::json details = nlohmann::json::object();  // shown as a key/value list (command, split, ...)
};

// The comparison table (markdown): one row per system, columns accuracy,
// macro-F1, per-class F1, per-gene and pooled AUROC; 95% CIs where present.
std::string metrics_table(const ReportInput& in, const std::string& cell = "");

// Writes DIR/report.md, DIR/confusion.svg and DIR/scores.svg (atomically).
void write_report(const std::string& dir, const ReportInput& in);

// Standalone SVGs (exposed for tests).
std::string confusion_svg(const nlohmann::json& metrics, const std::string& title);
std::string scores_svg(const ReportInput& in);

}  // namespace synthpert::perturb
