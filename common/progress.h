// A progress bar on stderr with rate and ETA, for long work (training, eval,
// trace generation). Redraws at most every 200 ms; silent when stderr is not a
// terminal except for a line every 10% so logs of batch jobs still show
// progress, and one final line unless that state was just printed.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace synthpert {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "it");
  // Draws to `out` instead of stderr (a terminal or not, as isatty says).
  ProgressBar(std::string label, int64_t total, std::string unit, std::FILE* out);
  ~ProgressBar();

  // Advances by `n` items; `extra` is shown after the counters (e.g. "loss 2.31").
  void advance(int64_t n = 1, const std::string& extra = "");
  void set_extra(const std::string& extra);
  // Prints the final line (also done by the destructor).
  void finish();

  double elapsed_s() const;

 private:
  void draw(bool force);

  std::string label_, unit_, extra_;
  std::FILE* out_;
  int64_t total_, done_ = 0;
  // What the last line showed, so the final line is not a repeat of it.
  int64_t drawn_done_ = -1;
  std::string drawn_extra_;
  int last_decile_ = -1;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Formats seconds as "1h02m", "3m05s" or "12s".
std::string format_duration(double seconds);

}  // namespace synthpert
