#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace synthpert {

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const auto total = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(total / 3600),
                  (long long)(total % 3600 / 60));
  else if (total >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(total / 60), (long long)(total % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", (long long)total);
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : ProgressBar(std::move(label), total, std::move(unit), stderr) {}

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, std::FILE* out)
    : label_(std::move(label)), unit_(std::move(unit)), out_(out), total_(total),
      tty_(::isatty(::fileno(out)) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::advance(int64_t n, const std::string& extra) {
  done_ += n;
  if (!extra.empty()) extra_ = extra;
  draw(false);
}

void ProgressBar::set_extra(const std::string& extra) { extra_ = extra; }

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_) {
    draw(true);
    std::fputc('\n', out_);
  } else if (done_ != drawn_done_ || extra_ != drawn_extra_) {
    draw(true);
  }
}

void ProgressBar::draw(bool force) {
  const auto now = std::chrono::steady_clock::now();
  const double el = elapsed_s();
  const double rate = el > 0 ? done_ / el : 0.0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / total_ : 0.0;
  if (tty_) {
    if (!force && now - last_draw_ < std::chrono::milliseconds(200)) return;
  } else {
    const int decile = static_cast<int>(frac * 10);
    if (!force && decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  drawn_done_ = done_;
  drawn_extra_ = extra_;
  const double eta = rate > 0 && total_ > done_ ? (total_ - done_) / rate : 0.0;
  constexpr int kWidth = 24;
  std::string bar(kWidth, ' ');
  for (int i = 0; i < kWidth && i < static_cast<int>(frac * kWidth + 1e-9); ++i) bar[i] = '#';
  std::fprintf(out_, "%s%s [%s] %lld/%lld %s  %.1f %s/s  elapsed %s  eta %s%s%s%s",
               tty_ ? "\r\x1b[2K" : "", label_.c_str(), bar.c_str(), (long long)done_,
               (long long)total_, unit_.c_str(), rate, unit_.c_str(),
               format_duration(el).c_str(), format_duration(eta).c_str(),
               extra_.empty() ? "" : "  ", extra_.c_str(), tty_ ? "" : "\n");
  std::fflush(out_);
}

}  // namespace synthpert
