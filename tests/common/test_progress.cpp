// ProgressBar writing into a pipe, as in a batch job's log: a line per 10%,
// no carriage returns, and the final state printed exactly once.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "common/progress.h"

using synthpert::ProgressBar;

namespace {

// Runs `use` on a ProgressBar drawing into a pipe and returns its lines.
std::vector<std::string> piped_lines(int64_t total, const std::function<void(ProgressBar&)>& use) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::FILE* w = ::fdopen(fds[1], "w");
  REQUIRE(w != nullptr);
  {
    ProgressBar bar("train", total, "step", w);
    use(bar);
  }
  std::fclose(w);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  CHECK(text.find('\r') == std::string::npos);
  CHECK(text.find('\x1b') == std::string::npos);
  REQUIRE((text.empty() || text.back() == '\n'));
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) lines.push_back(line);
  return lines;
}

bool has(const std::string& line, const std::string& part) { return line.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("progress to a pipe: one line per decile, the last one once", "[progress]") {
  const auto lines = piped_lines(20, [](ProgressBar& b) {
    for (int i = 0; i < 20; ++i) b.advance(1, "loss 1.5");
  });
  // Deciles 0..10 are reached at 1, 2, 4, 6, ..., 20 steps done.
  REQUIRE(lines.size() == 11);
  CHECK(has(lines.front(), "train [#                       ] 1/20 step"));
  CHECK(has(lines[1], " 2/20 step"));
  CHECK(has(lines[5], " 10/20 step"));
  CHECK(has(lines.back(), "train [########################] 20/20 step"));
  CHECK(has(lines.back(), "eta 0s  loss 1.5"));
}

TEST_CASE("progress to a pipe: finishing early prints the state it stopped at", "[progress]") {
  const auto lines = piped_lines(20, [](ProgressBar& b) {
    for (int i = 0; i < 5; ++i) b.advance();
    b.finish();
    b.finish();
  });
  REQUIRE(lines.size() == 4);
  CHECK(has(lines[2], " 4/20 step"));
  CHECK(has(lines[3], " 5/20 step"));
}

TEST_CASE("progress to a pipe: a changed extra after the last step is shown at the end", "[progress]") {
  const auto lines = piped_lines(2, [](ProgressBar& b) {
    b.advance(2, "loss 2.0");
    b.set_extra("val_loss 1.9");
  });
  REQUIRE(lines.size() == 2);
  CHECK(has(lines[0], "2/2 step"));
  CHECK(has(lines[0], "loss 2.0"));
  CHECK(has(lines[1], "2/2 step"));
  CHECK(has(lines[1], "val_loss 1.9"));
}

TEST_CASE("progress with no work prints one line", "[progress]") {
  const auto lines = piped_lines(0, [](ProgressBar&) {});
  REQUIRE(lines.size() == 1);
  CHECK(has(lines[0], "0/0 step"));
}

TEST_CASE("durations read as h/m/s", "[progress]") {
  CHECK(synthpert::format_duration(0) == "0s");
  CHECK(synthpert::format_duration(59.4) == "59s");
  CHECK(synthpert::format_duration(59.6) == "1m00s");
  CHECK(synthpert::format_duration(3725) == "1h02m");
  CHECK(synthpert::format_duration(-1) == "?");
}
