// Answer scoring of real PerturbQA questions (eval --mode score's work) as
// eval scores them: the prompts' shared prefix run once per batch, and the
// start of it that earlier batches ran copied from a PrefixStore that lives
// for the pass over all rows. --no-store: the shared prefix of every batch
// runs; --no-share: every prompt runs whole (the peer of
// benchmarks/run_score_cpu.sh).
// --generate N: eval --mode generate's work instead, N greedy tokens per
// row (no stop tokens) through engine::generate, each batch's rows copying
// from the run's store what earlier batches ran of their prompts; with
// --no-store every prompt runs whole (benchmarks/run_generate_cpu.sh).
//
// Usage: bench_score MODEL_DIR [--perturbqa DIR] [--cell rpe1] [--rows 128] [--batches 1,8,32]
//                              [--template reasoning] [--reps 3] [--no-store] [--no-share]
//                              [--generate N] [--device cpu|cuda] [--dtype f32|bf16|f16]
// The first --rows test rows of the cell line (de.csv order, as eval walks a
// split) are tokenized by perturb::PromptEncoder with the model folder's
// tokenizer and chat template, then scored in batches of B consecutive rows
// through perturb::score_answer_ids, as eval scores them. rows/s of the whole set: median over reps after one
// warm-up. Prints {"threads","rows":[{"name","unit","value"}],"shapes":[...]}
// with, per batch size, the mean prompt length, the mean prefix shared by a
// batch's prompts and the mean number of tokens per batch copied from the store.
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "benchmarks/bench_main.h"
#include "engine/generate.h"
#include "perturb/data.h"
#include "perturb/eval.h"
#include "perturb/prompt_encoder.h"

using namespace synthpert;
using Clock = std::chrono::steady_clock;
using synthpert::bench::median;
using synthpert::bench::parse_list;

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_score MODEL_DIR [--perturbqa DIR] [--cell rpe1] [--rows N] [--batches 1,8,32] "
                 "[--template NAME] [--reps N] [--no-store] [--no-share] [--generate N] [--device cpu|cuda] "
                 "[--dtype f32|bf16|f16]\n");
    return 2;
  }
  std::string data_flag, cell = "rpe1", tmpl = "reasoning";
  int64_t n_rows = 128, reps = 3, generate_tokens = 0;
  std::vector<int64_t> batches = {1, 8, 32};
  engine::LoadOptions load;
  int64_t min_shared_prefix = engine::kMinSharedPrefix;
  bool use_store = true;
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--no-share" || k == "--no-store") {
      if (k == "--no-share") min_shared_prefix = std::numeric_limits<int64_t>::max();
      use_store = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_score: %s needs a value\n", k.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (k == "--perturbqa")
      data_flag = v;
    else if (k == "--cell")
      cell = v;
    else if (k == "--rows")
      n_rows = std::stoll(v);
    else if (k == "--batches")
      batches = parse_list(v);
    else if (k == "--template")
      tmpl = v;
    else if (k == "--reps")
      reps = std::stoll(v);
    else if (k == "--generate")
      generate_tokens = std::stoll(v);
    else if (k == "--device")
      load.device = engine::parse_device(v);
    else if (k == "--dtype")
      load.dtype = engine::parse_dtype(v);
    else {
      std::fprintf(stderr, "bench_score: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (n_rows < 1 || reps < 1 || generate_tokens < 0 || batches.empty() ||
      *std::min_element(batches.begin(), batches.end()) < 1) {
    std::fprintf(stderr, "bench_score: --rows, --reps and every batch size must be >= 1, --generate >= 0\n");
    return 2;
  }
  const auto model = engine::Transformer::load(argv[1], load);
  const perturb::PromptEncoder enc(argv[1], perturb::PromptTemplate::load(tmpl));
  std::vector<perturb::AnswerIds> questions;
  for (const auto& row : perturb::load_cell_line(perturb::resolve_data_dir(data_flag), cell).rows) {
    if (!row.test) continue;
    questions.push_back(enc.question_ids(row));
    if (static_cast<int64_t>(questions.size()) == n_rows) break;
  }
  const auto sync = [&] {
    if (load.device.is_cuda()) torch::cuda::synchronize();
  };
  std::string rows_json, shapes_json;
  for (const int64_t B : batches) {
    double prompt_tokens = 0, shared_tokens = 0;
    int64_t n_batches = 0;
    for (size_t b = 0; b < questions.size(); b += static_cast<size_t>(B), ++n_batches) {
      std::vector<std::vector<int64_t>> prompts;
      for (size_t i = b; i < std::min(questions.size(), b + static_cast<size_t>(B)); ++i) {
        prompts.push_back(questions[i].prompt);
        prompt_tokens += static_cast<double>(questions[i].prompt.size());
      }
      shared_tokens += static_cast<double>(prompts.size() > 1 ? engine::shared_prefix_length(prompts) : 0);
    }
    std::vector<double> rate;
    double reused_tokens = 0;
    for (int64_t r = 0; r <= reps; ++r) {
      const auto t0 = Clock::now();
      engine::PrefixStore store;  // as eval keeps one for its run
      for (size_t b = 0; b < questions.size(); b += static_cast<size_t>(B)) {
        std::vector<const perturb::AnswerIds*> batch;
        for (size_t i = b; i < std::min(questions.size(), b + static_cast<size_t>(B)); ++i)
          batch.push_back(&questions[i]);
        if (generate_tokens > 0) {
          engine::GenerateOptions go;  // greedy, no stop ids: every row writes N tokens
          go.max_new_tokens = generate_tokens;
          go.prefixes = use_store ? &store : nullptr;
          std::vector<std::vector<int64_t>> prompts;
          for (const auto* q : batch) prompts.push_back(q->prompt);
          engine::generate(model, prompts, go);
        } else {
          perturb::score_answer_ids(model, batch, -1, use_store ? &store : nullptr, min_shared_prefix);
        }
      }
      sync();
      reused_tokens = static_cast<double>(store.stats().tokens_reused);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (r > 0) rate.push_back(static_cast<double>(questions.size()) / s);
    }
    char line[512];
    std::snprintf(
        line, sizeof line, "%s{\"name\":\"%s %s b%lld (%s, %zu %s test rows)\",\"unit\":\"rows/s\",\"value\":%.4g}",
        rows_json.empty() ? "" : ",",
        generate_tokens > 0 ? ("generate " + std::to_string(generate_tokens)).c_str() : "score", tmpl.c_str(),
        (long long)B, enc.uses_chat_template() ? "chat" : "plain", questions.size(), cell.c_str(), median(rate));
    rows_json += line;
    std::snprintf(line, sizeof line,
                  "%s{\"batch\":%lld,\"prompt_tokens_mean\":%.1f,\"shared_prefix_mean\":%.1f,"
                  "\"stored_prefix_mean\":%.1f}",
                  shapes_json.empty() ? "" : ",", (long long)B, prompt_tokens / static_cast<double>(questions.size()),
                  shared_tokens / static_cast<double>(n_batches), reused_tokens / static_cast<double>(n_batches));
    shapes_json += line;
  }
  std::printf("{\"threads\":%d,\"rows\":[%s],\"shapes\":[%s]}\n", at::get_num_threads(), rows_json.c_str(),
              shapes_json.c_str());
  return 0;
}

int main(int argc, char** argv) { return synthpert::bench::bench_main("bench_score", run, argc, argv); }
