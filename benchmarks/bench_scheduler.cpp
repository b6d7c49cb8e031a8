// What a long prompt joining the continuous batch costs the sequences already
// decoding, with a given prefill chunk (engine/batch_scheduler.h).
//
// Usage: bench_scheduler MODEL_DIR [--rows 4] [--long 2048] [--chunk 256] [--reps 3]
//                                  [--device cpu|cuda] [--dtype float32|bfloat16]
// `rows` sequences with 16-token prompts decode (greedy); after they have
// taken a few decode steps a prompt of --long tokens joins. Measured from its
// arrival until it has its first token: the largest gap between two tokens of
// a decoding sequence (the stall they see) and the joining prompt's time to
// first token. Median over reps after one warm-up; --chunk 0 is whole-prompt
// prefill, the peer of benchmarks/run_scheduler_cpu.sh. Prints
// {"threads","rows":[{"name","unit","value"}]}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include "benchmarks/bench_main.h"
#include "engine/batch_scheduler.h"

using namespace synthpert::engine;
using Clock = std::chrono::steady_clock;
using synthpert::bench::median;

namespace {

std::vector<int64_t> random_prompt(int64_t n, int64_t vocab, std::mt19937_64& rng) {
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (auto& t : out) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));
  return out;
}

struct Measurement {
  double stall_ms = 0, ttft_ms = 0;
};

Measurement measure(const Transformer& model, int64_t rows, int64_t long_len, int64_t chunk, uint64_t seed,
                    const std::function<void()>& sync) {
  const int64_t V = model.config().vocab_size;
  const int64_t budget = 64 + 2 * (chunk > 0 ? (long_len + chunk - 1) / chunk : 1);
  BatchScheduler s(model, rows + 1, std::max(long_len + 8, 16 + budget), {}, {chunk});
  std::mt19937_64 rng(seed);
  std::vector<std::vector<Clock::time_point>> times(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    SequenceRequest q;
    q.prompt = random_prompt(16, V, rng);
    q.max_new_tokens = budget;
    q.on_token = [&times, r, &sync](int64_t) {
      sync();
      times[static_cast<size_t>(r)].push_back(Clock::now());
      return true;
    };
    s.add(std::move(q));
  }
  // Let every row take a few decode steps before the long prompt arrives.
  while (s.decoding() < rows || times.front().size() < 4) s.step();

  Clock::time_point joined = Clock::now(), first_token{};
  bool has_first = false;
  SequenceRequest long_q;
  long_q.prompt = random_prompt(long_len, V, rng);
  long_q.max_new_tokens = 1;
  long_q.on_token = [&](int64_t) {
    first_token = Clock::now();
    has_first = true;
    return true;
  };
  s.add(std::move(long_q));
  while (!has_first) s.step();
  s.step();  // the decode step right after: a stall ends with the next token

  double stall = 0;
  for (const auto& t : times)
    for (size_t i = 1; i < t.size(); ++i)
      if (t[i] > joined) stall = std::max(stall, std::chrono::duration<double, std::milli>(t[i] - t[i - 1]).count());
  return {stall, std::chrono::duration<double, std::milli>(first_token - joined).count()};
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_scheduler MODEL_DIR [--rows N] [--long N] [--chunk N] [--reps N] "
                         "[--device cpu|cuda] [--dtype float32|bfloat16]\n");
    return 2;
  }
  int64_t rows = 4, long_len = 2048, chunk = 256, reps = 3;
  LoadOptions opts;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--rows") rows = std::atoll(v.c_str());
    else if (k == "--long") long_len = std::atoll(v.c_str());
    else if (k == "--chunk") chunk = std::atoll(v.c_str());
    else if (k == "--reps") reps = std::atoll(v.c_str());
    else if (k == "--device") opts.device = parse_device(v);
    else if (k == "--dtype") opts.dtype = v == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
    else {
      std::fprintf(stderr, "bench_scheduler: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (rows < 1 || long_len < 1 || chunk < 0 || reps < 1) {
    std::fprintf(stderr, "bench_scheduler: --rows, --long and --reps must be >= 1, --chunk >= 0\n");
    return 2;
  }
  const auto model = Transformer::load(argv[1], opts);
  const std::function<void()> sync = [&] {
    if (opts.device.is_cuda()) torch::cuda::synchronize();
  };
  std::vector<double> stall, ttft;
  for (int64_t r = 0; r <= reps; ++r) {
    const Measurement m = measure(model, rows, long_len, chunk, 100 + static_cast<uint64_t>(r), sync);
    if (r == 0) continue;  // warm-up
    stall.push_back(m.stall_ms);
    ttft.push_back(m.ttft_ms);
  }
  std::printf("{\"threads\":%d,\"rows\":[{\"name\":\"decode stall, %lld rows, a %lld-token prompt joins\","
              "\"unit\":\"ms\",\"value\":%.2f},{\"name\":\"time to first token of the %lld-token prompt\","
              "\"unit\":\"ms\",\"value\":%.2f}]}\n",
              at::get_num_threads(), static_cast<long long>(rows), static_cast<long long>(long_len), median(stall),
              static_cast<long long>(long_len), median(ttft));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return synthpert::bench::bench_main("bench_scheduler", run, argc, argv); }
