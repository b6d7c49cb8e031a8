#include "perturb/calibration.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "perturb/metrics.h"

namespace synthpert::perturb {

using nlohmann::json;

namespace {

int argmax_shifted(const std::array<double, 3>& lp, const std::array<double, 3>& add) {
  int best = 0;
  for (int k = 1; k < 3; ++k)
    if (lp[k] + add[k] > lp[best] + add[best]) best = k;
  return best;
}

double macro_f1_from_confusion(const int64_t (&c)[3][3]) {
  double sum = 0;
  for (int k = 0; k < 3; ++k) {
    int64_t predicted = 0, actual = 0;
    for (int j = 0; j < 3; ++j) predicted += c[j][k], actual += c[k][j];
    // F1 = 2 tp / (predicted + actual); zero when both are empty (zero_division=0).
    if (predicted + actual > 0) sum += 2.0 * static_cast<double>(c[k][k]) / static_cast<double>(predicted + actual);
  }
  return sum / 3.0;
}

struct Best {
  double f1 = -1, up = 0, down = 0;
  void offer(double f, double u, double d) {
    // Ties prefer the smaller move from zero: no offsets unless they help.
    const bool better = f > f1 + 1e-12 || (std::abs(f - f1) <= 1e-12 && std::abs(u) + std::abs(d) < std::abs(up) + std::abs(down));
    if (better) f1 = f, up = u, down = d;
  }
};

void scan(const std::vector<std::array<double, 3>>& logp, const std::vector<Label>& labels, double lo_up, double hi_up,
          double lo_down, double hi_down, double step, Best& best) {
  const int n_up = static_cast<int>(std::lround((hi_up - lo_up) / step)), n_down = static_cast<int>(std::lround((hi_down - lo_down) / step));
  for (int i = 0; i <= n_up; ++i)
    for (int j = 0; j <= n_down; ++j) {
      ClassOffsets o;
      o.add = {lo_up + i * step, lo_down + j * step, 0.0};
      best.offer(macro_f1_with_offsets(logp, labels, o), o.add[0], o.add[1]);
    }
}

}  // namespace

double macro_f1_with_offsets(const std::vector<std::array<double, 3>>& logp, const std::vector<Label>& labels,
                             const ClassOffsets& offsets) {
  SP_CHECK_INPUT(logp.size() == labels.size(), "calibration: ", logp.size(), " scores for ", labels.size(), " labels");
  int64_t c[3][3] = {};
  for (size_t i = 0; i < logp.size(); ++i) ++c[label_index(labels[i])][argmax_shifted(logp[i], offsets.add)];
  return macro_f1_from_confusion(c);
}

ClassOffsets fit_macro_f1_offsets(const std::vector<std::array<double, 3>>& logp, const std::vector<Label>& labels) {
  SP_CHECK_INPUT(!logp.empty(), "calibration: no validation rows to fit offsets on");
  SP_CHECK_INPUT(logp.size() == labels.size(), "calibration: ", logp.size(), " scores for ", labels.size(), " labels");
  Best best;
  scan(logp, labels, -2.0, 8.0, -2.0, 8.0, 0.1, best);
  const double up = best.up, down = best.down;
  scan(logp, labels, up - 0.1, up + 0.1, down - 0.1, down + 0.1, 0.01, best);
  // Grid points are multiples of 0.01 up to the rounding of the stepping;
  // snapping keeps the written offsets readable (0.87, not 0.8700000000000003).
  auto snap = [](double x) { return std::round(x * 100.0) / 100.0; };
  ClassOffsets o;
  o.add = {snap(best.up), snap(best.down), 0.0};
  return o;
}

json offsets_to_json(const ClassOffsets& o) {
  json j = json::object();
  for (Label l : kAllLabels) j[label_name(l)] = o.add[label_index(l)];
  return {{"offsets", j}};
}

ClassOffsets offsets_from_json(const json& j, const std::string& source) {
  SP_CHECK_INPUT(j.is_object() && j.contains("offsets") && j["offsets"].is_object(), source,
                 ": expected an object with \"offsets\": {label: number}");
  ClassOffsets o;
  for (auto& [name, v] : j["offsets"].items()) {
    const auto l = label_from_name(name);
    SP_CHECK_INPUT(l.has_value(), source, ": unknown label '", name, "' in offsets");
    SP_CHECK_INPUT(v.is_number() && std::isfinite(v.get<double>()), source, ": offset of '", name, "' must be a finite number");
    o.add[label_index(*l)] = v.get<double>();
  }
  return o;
}

ClassOffsets load_offsets(const std::string& path) {
  SP_CHECK_INPUT(path_exists(path), "--offsets ", path, ": no such file");
  return offsets_from_json(read_json_input(path), path);
}

void read_scored_predictions(const std::string& path, std::vector<std::array<double, 3>>& logp, std::vector<Label>& labels) {
  std::ifstream in(path);
  SP_CHECK_INPUT(in.good(), path, ": cannot open");
  std::string line;
  int64_t n = 0;
  RowsSeen seen;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank, also a lone CRLF's \r
    const json j = json::parse(line, nullptr, false);
    SP_CHECK_INPUT(!j.is_discarded() && j.is_object(), path, ":", n, ": not a JSON object");
    if (j.value("cell_type", json()).is_string() && j.value("pert", json()).is_string() &&
        j.value("gene", json()).is_string())
      seen.add(str_cat(path, ":", n), n, j["cell_type"].get<std::string>(), j["pert"].get<std::string>(),
               j["gene"].get<std::string>());
    SP_CHECK_INPUT(j.contains("logprobs") && j["logprobs"].is_array() && j["logprobs"].size() == 3, path, ":", n,
                   ": no \"logprobs\" array of three numbers (written by eval --mode score)");
    SP_CHECK_INPUT(j.contains("label") && j["label"].is_string(), path, ":", n, ": no \"label\"");
    const auto l = label_from_name(j["label"].get<std::string>());
    SP_CHECK_INPUT(l.has_value(), path, ":", n, ": unknown label ", j["label"].dump());
    std::array<double, 3> lp{};
    for (int k = 0; k < 3; ++k) {
      SP_CHECK_INPUT(j["logprobs"][k].is_number(), path, ":", n, ": logprobs must be numbers");
      lp[k] = j["logprobs"][k].get<double>();
    }
    logp.push_back(lp);
    labels.push_back(*l);
  }
  SP_CHECK_INPUT(!logp.empty(), path, ": no predictions");
}

json calibration_source(const std::string& predictions_path) {
  const auto config_path = std::filesystem::path(predictions_path).parent_path() / "eval_config.json";
  if (!path_exists(config_path.string())) return nullptr;
  // The record is what tells validation predictions from test ones, so one
  // that cannot be read stops the fit instead of being passed over.
  const json c = json::parse(read_file(config_path.string()), nullptr, false);
  SP_CHECK_INPUT(c.is_object() && c.contains("part") && c["part"].is_string(), config_path.string(),
                 ": not the record eval writes (a JSON object with a \"part\"), so which rows ", predictions_path,
                 " holds is unknown; rerun eval --part val into a fresh --out");
  SP_CHECK_INPUT(c["part"] != "test", predictions_path, " holds predictions of test rows (", config_path.string(),
                 ": part \"test\"); offsets fitted on them would be scored on the rows they were fitted to. "
                 "Calibrate on eval --part val");
  return {{"split", c.value("split", "")}, {"part", c["part"]}};
}

}  // namespace synthpert::perturb
