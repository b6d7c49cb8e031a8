#include "perturb/report.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

#include "common/fs.h"
#include "perturb/labels.h"

namespace synthpert::perturb {

using nlohmann::json;

namespace {

std::string fmt(const json& v, int digits = 3) {
  if (!v.is_number()) return "–";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v.get<double>());
  return buf;
}

// "0.912 [0.905, 0.918]" when the metrics carry a bootstrap interval.
std::string with_ci(const json& m, const json& value, const std::string& key) {
  std::string s = fmt(value);
  if (m.contains("ci95") && m["ci95"].contains(key))
    s += " [" + fmt(m["ci95"][key][0]) + ", " + fmt(m["ci95"][key][1]) + "]";
  return s;
}

const json& block(const json& m, const std::string& cell) {
  static const json empty = json::object();
  if (cell.empty()) return m;
  if (m.contains("per_cell_type") && m["per_cell_type"].contains(cell)) return m["per_cell_type"][cell];
  return empty;
}

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

struct Series {
  std::string name;
  const json* metrics;
};

std::vector<Series> all_series(const ReportInput& in) {
  std::vector<Series> s = {{in.model_name, &in.model}};
  for (const auto& [name, m] : in.baselines) s.push_back({name, &m});
  return s;
}

}  // namespace

std::string metrics_table(const ReportInput& in, const std::string& cell) {
  std::ostringstream os;
  os << "| system | n | accuracy | macro-F1 | F1 up | F1 down | F1 NDE | DE AUROC/gene | dir AUROC/gene"
        " | DE AUROC pooled | dir AUROC pooled | unparsed |\n";
  os << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& s : all_series(in)) {
    const json& m = block(*s.metrics, cell);
    if (m.empty()) continue;
    const json& a = m["auroc"];
    os << "| " << s.name << " | " << m.value("n", 0) << " | " << with_ci(m, m["accuracy"], "accuracy") << " | "
       << with_ci(m, m["macro_f1"], "macro_f1");
    for (Label l : kAllLabels) os << " | " << fmt(m["per_class"][label_name(l)]["f1"]);
    os << " | " << with_ci(m, a["de_per_gene"], "de_per_gene") << " | " << with_ci(m, a["dir_per_gene"], "dir_per_gene")
       << " | " << with_ci(m, a["de_pooled"], "de_pooled") << " | " << with_ci(m, a["dir_pooled"], "dir_pooled")
       << " | " << m.value("unparsed", 0) << " |\n";
  }
  return os.str();
}

std::string confusion_svg(const json& m, const std::string& title) {
  const int cell = 110, left = 190, top = 70;
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << left + 3 * cell + 20 << "\" height=\""
     << top + 3 * cell + 50 << "\" font-family=\"sans-serif\" font-size=\"13\">\n";
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">" << escape_xml(title) << "</text>\n";
  os << "<text x=\"" << left + 3 * cell / 2 << "\" y=\"" << top - 28
     << "\" text-anchor=\"middle\">prediction (cells: count, share of the true class)</text>\n";
  const char* short_names[3] = {"up", "down", "NDE"};
  const json& mat = m["confusion"]["matrix"];
  for (int t = 0; t < 3; ++t) {
    // A share of all rows of the true class, unparsed ones included (the
    // class's support): a model that leaves half of them unparsed must not
    // read as perfect. Without per_class, the matrix row is all there is.
    double row_total = 0;
    for (int p = 0; p < 3; ++p) row_total += mat[t][p].get<double>();
    const std::string& name = label_name(kAllLabels[t]);
    if (m.contains("per_class") && m["per_class"].contains(name) && m["per_class"][name].contains("support"))
      row_total = std::max(row_total, m["per_class"][name]["support"].get<double>());
    os << "<text x=\"" << left - 10 << "\" y=\"" << top + t * cell + cell / 2 + 5 << "\" text-anchor=\"end\">truth "
       << short_names[t] << "</text>\n";
    for (int p = 0; p < 3; ++p) {
      const double v = mat[t][p].get<double>(), share = row_total > 0 ? v / row_total : 0;
      // White to deep blue by the share of the true class predicted as p.
      const int shade = static_cast<int>(255 - share * 200);
      os << "<rect x=\"" << left + p * cell << "\" y=\"" << top + t * cell << "\" width=\"" << cell << "\" height=\""
         << cell << "\" fill=\"rgb(" << shade << "," << shade << ",255)\" stroke=\"#555\"/>\n";
      os << "<text x=\"" << left + p * cell + cell / 2 << "\" y=\"" << top + t * cell + cell / 2
         << "\" text-anchor=\"middle\" fill=\"" << (share > 0.6 ? "white" : "black") << "\">"
         << static_cast<int64_t>(v) << "</text>\n";
      os << "<text x=\"" << left + p * cell + cell / 2 << "\" y=\"" << top + t * cell + cell / 2 + 18
         << "\" text-anchor=\"middle\" fill=\"" << (share > 0.6 ? "white" : "black") << "\">" << fmt(share, 2)
         << "</text>\n";
    }
  }
  for (int p = 0; p < 3; ++p)
    os << "<text x=\"" << left + p * cell + cell / 2 << "\" y=\"" << top - 8 << "\" text-anchor=\"middle\">"
       << short_names[p] << "</text>\n";
  os << "<text x=\"10\" y=\"" << top + 3 * cell + 30 << "\">unparsed: " << m.value("unparsed", 0)
     << " (in each true class's total: its row's shares sum below 1)</text>\n";
  os << "</svg>\n";
  return os.str();
}

std::string scores_svg(const ReportInput& in) {
  struct Metric {
    const char* label;
    std::vector<std::string> path;
  };
  const std::vector<Metric> metrics = {
      {"macro-F1", {"macro_f1"}},
      {"F1 up", {"per_class", "upregulated", "f1"}},
      {"F1 down", {"per_class", "downregulated", "f1"}},
      {"DE AUROC/gene", {"auroc", "de_per_gene"}},
      {"dir AUROC/gene", {"auroc", "dir_per_gene"}},
      {"DE AUROC pooled", {"auroc", "de_pooled"}},
  };
  const auto series = all_series(in);
  const char* colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  const int group = 40 + 22 * static_cast<int>(series.size()), left = 50, top = 40, height = 260;
  const int width = left + group * static_cast<int>(metrics.size()) + 20;
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << top + height + 90
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">" << escape_xml(in.title) << "</text>\n";
  for (int k = 0; k <= 4; ++k) {
    const int y = top + height - k * height / 4;
    os << "<line x1=\"" << left << "\" x2=\"" << width - 10 << "\" y1=\"" << y << "\" y2=\"" << y
       << "\" stroke=\"#ddd\"/><text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
       << fmt(k * 0.25, 2) << "</text>\n";
  }
  for (size_t i = 0; i < metrics.size(); ++i) {
    const int x0 = left + static_cast<int>(i) * group + 20;
    for (size_t s = 0; s < series.size(); ++s) {
      const json* v = series[s].metrics;
      for (const auto& key : metrics[i].path) v = v->contains(key) ? &(*v)[key] : nullptr;
      if (!v || !v->is_number()) continue;
      const double value = std::clamp(v->get<double>(), 0.0, 1.0);
      const int h = static_cast<int>(value * height);
      os << "<rect x=\"" << x0 + static_cast<int>(s) * 22 << "\" y=\"" << top + height - h
         << "\" width=\"18\" height=\"" << h << "\" fill=\"" << colors[s % 6] << "\"><title>"
         << escape_xml(series[s].name) << " " << fmt(*v) << "</title></rect>\n";
    }
    os << "<text x=\"" << x0 + 11 * static_cast<int>(series.size()) << "\" y=\"" << top + height + 18
       << "\" text-anchor=\"middle\">" << metrics[i].label << "</text>\n";
  }
  for (size_t s = 0; s < series.size(); ++s) {
    const int x = left + static_cast<int>(s) * 150, y = top + height + 50;
    os << "<rect x=\"" << x << "\" y=\"" << y - 10 << "\" width=\"12\" height=\"12\" fill=\"" << colors[s % 6]
       << "\"/><text x=\"" << x + 16 << "\" y=\"" << y << "\">" << escape_xml(series[s].name) << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

void write_report(const std::string& dir, const ReportInput& in) {
  std::ostringstream md;
  md << "# " << in.title << "\n\n";
  for (const auto& [k, v] : in.details.items()) md << "- " << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
  md << "\nAll systems are scored on the same rows. Per-gene AUROC follows PerturbQA (mean over target genes "
        "whose rows hold both classes). Brackets are bootstrap 95% intervals: accuracy, macro-F1 and pooled AUROC "
        "resample rows; per-gene AUROC resamples (cell line, gene) groups.\n\n";
  md << "## All rows\n\n" << metrics_table(in) << "\n";
  md << "![confusion matrix](confusion.svg) ![scores](scores.svg)\n\n";
  if (in.model.contains("per_cell_type") && in.model["per_cell_type"].size() > 1) {
    for (const auto& [cell, m] : in.model["per_cell_type"].items()) {
      (void)m;
      md << "## " << cell << "\n\n" << metrics_table(in, cell) << "\n";
    }
  }
  write_file_atomic(path_join(dir, "report.md"), md.str());
  write_file_atomic(path_join(dir, "confusion.svg"), confusion_svg(in.model, in.title + ": " + in.model_name));
  write_file_atomic(path_join(dir, "scores.svg"), scores_svg(in));
}

}  // namespace synthpert::perturb
