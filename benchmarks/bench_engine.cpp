// Prefill and decode throughput of the engine on one model folder.
//
// Usage: bench_engine MODEL_DIR [--prompt 128] [--new 64] [--batches 1,8] [--reps 5]
//                               [--device cpu|cuda] [--dtype float32|bfloat16|float16]
// Prints one JSON object: {"rows":[{"name","unit","value"}...]} with the median
// over reps after one warm-up. Prefill: tokens/s of one forward over
// batch x prompt tokens, with the logits of the last token (what generation
// needs). Decode: tokens/s of the decode forwards (greedy; batch x (new - 1)
// tokens), timed as the peers time them: from the prefill's first token, on
// the host, to the last. On CUDA every timed region ends with a device sync.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include "benchmarks/bench_main.h"
#include "engine/generate.h"

using namespace synthpert::engine;
using Clock = std::chrono::steady_clock;
using synthpert::bench::median;
using synthpert::bench::parse_list;

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_engine MODEL_DIR [--prompt N] [--new N] [--batches 1,8] [--reps N] "
                 "[--device cpu|cuda] [--dtype float32|bfloat16|float16]\n");
    return 2;
  }
  int64_t prompt = 128, fresh = 64, reps = 5;
  std::vector<int64_t> batches = {1, 8};
  LoadOptions opts;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--prompt") prompt = std::atoll(argv[i + 1]);
    else if (k == "--new") fresh = std::atoll(argv[i + 1]);
    else if (k == "--reps") reps = std::atoll(argv[i + 1]);
    else if (k == "--batches") batches = parse_list(argv[i + 1]);
    else if (k == "--device") opts.device = parse_device(argv[i + 1]);
    else if (k == "--dtype") {
      const std::string d = argv[i + 1];
      if (d == "float32") opts.dtype = torch::kFloat32;
      else if (d == "bfloat16") opts.dtype = torch::kBFloat16;
      else if (d == "float16") opts.dtype = torch::kFloat16;
      else {
        std::fprintf(stderr, "bench_engine: --dtype must be float32, bfloat16 or float16\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "bench_engine: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (fresh < 2 || prompt < 1 || reps < 1) {
    std::fprintf(stderr, "bench_engine: --new must be >= 2, --prompt and --reps >= 1\n");
    return 2;
  }
  const auto model = Transformer::load(argv[1], opts);
  const auto sync = [&] {
    if (opts.device.is_cuda()) torch::cuda::synchronize();
  };
  const int64_t V = model.config().vocab_size;
  InferenceGuard guard;
  std::printf("{\"threads\":%d,\"rows\":[", at::get_num_threads());
  bool first = true;
  for (int64_t B : batches) {
    const auto ids_host = torch::randint(0, V, {B, prompt}, torch::kInt64);
    const auto ids = ids_host.to(opts.device);
    std::vector<double> pre;
    for (int64_t r = 0; r <= reps; ++r) {
      const auto t0 = Clock::now();
      const auto h = model.hidden_states(ForwardBatch::from_ids(ids));
      model.logits(h.select(1, prompt - 1));
      sync();
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (r > 0) pre.push_back(B * prompt / s);
    }
    // Decode: the prefill yields every row's first token; the clock starts
    // when the first of them reaches the host and stops after the decode
    // forwards that yield the other fresh - 1.
    std::vector<std::vector<int64_t>> prompts(B, std::vector<int64_t>(prompt));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < prompt; ++t) prompts[b][t] = ids_host[b][t].item<int64_t>();
    GenerateOptions g;
    g.max_new_tokens = fresh;
    Clock::time_point first_token;
    bool started = false;
    g.on_token = [&](size_t, int64_t) {
      if (!started) first_token = Clock::now();
      started = true;
      return true;
    };
    std::vector<double> dec;
    for (int64_t r = 0; r <= reps; ++r) {
      started = false;
      generate(model, prompts, g);
      sync();
      const double s = std::chrono::duration<double>(Clock::now() - first_token).count();
      if (r > 0) dec.push_back(B * (fresh - 1) / std::max(1e-9, s));
    }
    std::printf("%s{\"name\":\"prefill b%lld t%lld\",\"unit\":\"tokens/s\",\"value\":%.1f},", first ? "" : ",",
                (long long)B, (long long)prompt, median(pre));
    std::printf("{\"name\":\"decode b%lld +%lld\",\"unit\":\"tokens/s\",\"value\":%.1f}", (long long)B,
                (long long)fresh, median(dec));
    first = false;
  }
  std::printf("]}\n");
  return 0;
}

int main(int argc, char** argv) { return synthpert::bench::bench_main("bench_engine", run, argc, argv); }
