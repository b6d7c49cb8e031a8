#include "trainer/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace synthpert::trainer {

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// About five round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double span = hi - lo > 0 ? hi - lo : 1.0;
  const double raw = span / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) t.push_back(v);
  return t;
}

}  // namespace

std::string loss_curve_svg(const std::vector<nlohmann::json>& metrics, const std::string& title) {
  std::vector<std::pair<double, double>> train, val;
  for (const auto& j : metrics) {
    if (!j.contains("step")) continue;
    const double s = j["step"].get<double>();
    if (j.contains("loss") && j["loss"].is_number()) train.emplace_back(s, j["loss"].get<double>());
    if (j.contains("val_loss") && j["val_loss"].is_number()) val.emplace_back(s, j["val_loss"].get<double>());
  }
  const double W = 720, H = 420, L = 70, R = 20, T = 40, B = 50;
  double x0 = std::numeric_limits<double>::max(), x1 = std::numeric_limits<double>::lowest();
  double y0 = x0, y1 = x1;
  for (const auto* series : {&train, &val})
    for (const auto& [x, y] : *series) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };

  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) + "\" height=\"" +
                  num(H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(W / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" +
       xml_escape(title) + "</text>\n";
  for (double t : ticks(y0, y1)) {
    s += "<line x1=\"" + num(L) + "\" x2=\"" + num(W - R) + "\" y1=\"" + num(py(t)) + "\" y2=\"" +
         num(py(t)) + "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + num(L - 6) + "\" y=\"" + num(py(t) + 4) + "\" text-anchor=\"end\">" +
         num(t) + "</text>\n";
  }
  for (double t : ticks(x0, x1))
    s += "<text x=\"" + num(px(t)) + "\" y=\"" + num(H - B + 18) + "\" text-anchor=\"middle\">" +
         num(t) + "</text>\n";
  s += "<rect x=\"" + num(L) + "\" y=\"" + num(T) + "\" width=\"" + num(W - L - R) + "\" height=\"" +
       num(H - T - B) + "\" fill=\"none\" stroke=\"#333\"/>\n";
  s += "<text x=\"" + num((L + W - R) / 2) + "\" y=\"" + num(H - 12) +
       "\" text-anchor=\"middle\">optimizer step</text>\n";
  s += "<text transform=\"translate(16," + num((T + H - B) / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">loss</text>\n";
  if (!train.empty()) {
    s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : train)
      if (std::isfinite(y)) s += num(px(x)) + "," + num(py(y)) + " ";
    s += "\"/>\n";
  }
  for (const auto& [x, y] : val)
    if (std::isfinite(y))
      s += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"3.5\" fill=\"#d62728\"/>\n";
  s += "<text x=\"" + num(W - R - 150) + "\" y=\"" + num(T + 18) +
       "\" fill=\"#1f77b4\">&#8212; train loss</text>\n";
  if (!val.empty())
    s += "<text x=\"" + num(W - R - 150) + "\" y=\"" + num(T + 34) +
         "\" fill=\"#d62728\">&#9679; validation loss</text>\n";
  s += "</svg>\n";
  return s;
}

}  // namespace synthpert::trainer
