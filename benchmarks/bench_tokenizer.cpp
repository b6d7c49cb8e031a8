// Single-thread encode throughput of the tokenizers on PerturbQA-style prompts.
//
// Usage: bench_tokenizer [--prompts N] [--reps R] [--dump FILE] NAME=DIR ...
// Each prompt is encoded with its own encode() call, as the data pipeline
// does. "first pass" is one pass over all prompts with a freshly loaded
// tokenizer (its word cache empty); "warm" is the median of R passes after
// that. --dump writes the prompts as a JSON list so the node peer encodes the
// same text. Prints {"rows":[{"name","unit","value"}...]}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "tests/tokenizer/text_corpus.h"
#include "tokenizer/tokenizer.h"

using Clock = std::chrono::steady_clock;

namespace {

double pass_mb_per_s(const synthpert::tokenizer::Tokenizer& tok, const std::vector<std::string>& prompts, size_t bytes) {
  size_t sink = 0;
  const auto t0 = Clock::now();
  for (const auto& p : prompts) sink += tok.encode(p, true).size();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (sink == 0) std::fprintf(stderr, "bench_tokenizer: no tokens produced\n");
  return static_cast<double>(bytes) / 1e6 / s;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n_prompts = 20000, reps = 5;
  std::string dump;
  std::vector<std::pair<std::string, std::string>> tokenizers;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--prompts" && i + 1 < argc) n_prompts = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--reps" && i + 1 < argc) reps = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--dump" && i + 1 < argc) dump = argv[++i];
    else if (a.find('=') != std::string::npos) tokenizers.emplace_back(a.substr(0, a.find('=')), a.substr(a.find('=') + 1));
    else {
      std::fprintf(stderr, "usage: bench_tokenizer [--prompts N] [--reps R] [--dump FILE] NAME=DIR ...\n");
      return 2;
    }
  }
  synthpert::test::Rng rng(2024);
  std::vector<std::string> prompts;
  size_t bytes = 0;
  for (size_t i = 0; i < n_prompts; ++i) {
    prompts.push_back(synthpert::test::perturbqa_prompt(rng));
    bytes += prompts.back().size();
  }
  if (!dump.empty()) synthpert::write_file_atomic(dump, nlohmann::json(prompts).dump());

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [name, dir] : tokenizers) {
    const auto tok = synthpert::tokenizer::Tokenizer::load(dir);
    const double first = pass_mb_per_s(*tok, prompts, bytes);
    std::vector<double> warm;
    for (size_t r = 0; r < reps; ++r) warm.push_back(pass_mb_per_s(*tok, prompts, bytes));
    std::sort(warm.begin(), warm.end());
    rows.push_back({{"name", "encode " + name + " (first pass)"}, {"unit", "MB/s"}, {"value", first}});
    if (!warm.empty()) rows.push_back({{"name", "encode " + name + " (warm)"}, {"unit", "MB/s"}, {"value", warm[warm.size() / 2]}});
  }
  std::printf("%s\n", nlohmann::json({{"prompts", n_prompts}, {"bytes", bytes}, {"rows", rows}}).dump().c_str());
  return 0;
}
