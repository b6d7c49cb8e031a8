#include "perturb/eval_writer.h"

#include <cstdio>

#include "common/error.h"

namespace synthpert::perturb {

using nlohmann::json;

namespace {

std::string percent(int64_t part, size_t whole) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

}  // namespace

Prediction unanswered_prediction(const Row& r) {
  Prediction p;
  p.cell_type = r.cell_type;
  p.pert = r.pert;
  p.gene = r.gene;
  p.label = r.label;
  return p;
}

PredictionWriter::PredictionWriter(const std::string& path, std::vector<json>& done, size_t total_rows,
                                   const std::string& mode, bool progress)
    : path_(path), done_(done), out_(path, std::ios::app) {
  SP_CHECK_INPUT(out_.good(), path, ": cannot open for appending");
  if (progress) {
    bar_.emplace("eval " + mode, static_cast<int64_t>(total_rows), "rows");
    bar_->advance(static_cast<int64_t>(done.size()));
  }
  for (const auto& d : done) correct_ += d["prediction"] == d["label"];
}

void PredictionWriter::write(std::vector<json> lines) {
  if (lines.empty()) return;
  std::string chunk;
  for (auto& l : lines) {
    correct_ += l["prediction"] == l["label"];
    // Bytes that are not UTF-8 (an endpoint's error page in Latin-1) become
    // U+FFFD, so a row refused alone is recorded instead of ending the run.
    chunk += l.dump(-1, ' ', false, json::error_handler_t::replace) + '\n';
    done_.push_back(std::move(l));
  }
  out_ << chunk;
  out_.flush();
  SP_CHECK_INPUT(out_.good(), path_, ": write failed");
  if (bar_) bar_->advance(static_cast<int64_t>(lines.size()), "acc " + percent(correct_, done_.size()));
}

}  // namespace synthpert::perturb
