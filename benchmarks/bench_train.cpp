// Training throughput and peak memory of the trainer on one model folder.
//
// Usage: bench_train MODEL_DIR [--seq 2048] [--batch 1] [--steps 10] [--warmup 2]
//                    [--lora-r 32] [--dtype bf16] [--device cuda] [--qlora [--double-quant]]
//                    [--full] [--activation-checkpointing] [--name PREFIX]
// Runs warmup + steps optimizer steps of LoRA (r, alpha = r, all seven
// projections) on random token sequences of exactly --seq tokens, loss on
// every token, and prints {"rows":[{"name","unit","value"}]}: tokens/s over the
// timed steps (median step time) and the peak memory (CUDA allocator peak on a
// GPU, resident memory on the CPU). benchmarks/peer_train.py measures Hugging
// Face transformers + PEFT on the same shapes (benchmarks/run_train_gpu.sh),
// benchmarks/peer_train_eager.py plain PyTorch eager on the CPU
// (benchmarks/run_train_cpu.sh); both scripts write benchmarks/results/.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "common/host_allocator.h"
#include "engine/config.h"
#include "trainer/lora.h"
#include "trainer/metrics_log.h"
#include "trainer/trainer.h"

using namespace synthpert;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  synthpert::keep_large_allocations_on_heap();  // as the synthpert CLI
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_train MODEL_DIR [--seq N] [--batch N] [--steps N] [--warmup N] "
                         "[--lora-r N] [--dtype bf16|f32] [--device cuda|cpu] [--qlora [--double-quant]] [--full] "
                         "[--activation-checkpointing] [--name PREFIX]\n");
    return 2;
  }
  int64_t seq = 2048, batch = 1, steps = 10, warmup = 2, r = 32;
  std::string dtype = "bf16", device = "cuda", name = "lora";
  bool qlora = false, double_quant = false, full = false, ckpt = false;
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&] { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (k == "--seq") seq = std::atoll(next().c_str());
    else if (k == "--batch") batch = std::atoll(next().c_str());
    else if (k == "--steps") steps = std::atoll(next().c_str());
    else if (k == "--warmup") warmup = std::atoll(next().c_str());
    else if (k == "--lora-r") r = std::atoll(next().c_str());
    else if (k == "--dtype") dtype = next();
    else if (k == "--device") device = next();
    else if (k == "--name") name = next();
    else if (k == "--qlora") qlora = true;
    else if (k == "--double-quant") double_quant = true;
    else if (k == "--full") full = true;
    else if (k == "--activation-checkpointing") ckpt = true;
  }
  const auto config = engine::load_config(argv[1]);
  trainer::SftDataset data;
  uint64_t s = 88172645463325252ull;
  for (int64_t e = 0; e < batch * (warmup + steps); ++e) {
    trainer::SftExample ex;
    for (int64_t t = 0; t < seq; ++t) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;  // xorshift64
      ex.ids.push_back(static_cast<int64_t>(s % static_cast<uint64_t>(config.vocab_size)));
    }
    ex.loss_mask.assign(seq, 1);
    data.examples.push_back(std::move(ex));
  }

  trainer::TrainOptions o;
  o.model_dir = argv[1];
  o.out_dir = (std::filesystem::temp_directory_path() / ("bench_train-" + std::to_string(::getpid()))).string();
  o.full = full;
  o.qlora = qlora;
  o.double_quant = double_quant;
  o.lora.r = r;
  o.lora.alpha = static_cast<double>(r);
  o.lora.target_modules = trainer::parse_lora_targets("all");
  o.batch = batch;
  o.max_steps = warmup + steps;
  o.max_seq_len = seq;
  o.dtype = dtype;
  o.device = device;
  o.checkpoint_layers = ckpt;
  o.progress = false;
  o.keep_checkpoints = 1;

  std::vector<double> times;
  auto last = Clock::now();
  trainer::TrainHooks hooks;
  hooks.on_step = [&](const trainer::StepRecord& rec) {
    // Step times include the optimizer; a CUDA step's .item() on the loss
    // has already synchronised.
    const auto now = Clock::now();
    if (rec.step == warmup) trainer::reset_peak_memory(device);
    if (rec.step > warmup) times.push_back(std::chrono::duration<double>(now - last).count());
    last = now;
  };
  auto comm = trainer::Communicator::create({}, engine::parse_device(device), std::chrono::seconds(60));
  trainer::run_training(o, data, {}, *comm, hooks);
  std::filesystem::remove_all(o.out_dir);

  std::sort(times.begin(), times.end());
  const double median = times.empty() ? 0.0 : times[times.size() / 2];
  const double tps = median > 0 ? static_cast<double>(batch * seq) / median : 0.0;
  std::printf("{\"threads\":%d,\"rows\":[{\"name\":\"%s seq %lld tokens/s\",\"unit\":\"tokens/s\",\"value\":%.1f},"
              "{\"name\":\"%s seq %lld peak memory\",\"unit\":\"bytes\",\"value\":%lld}]}\n",
              at::get_num_threads(), name.c_str(), static_cast<long long>(seq), tps, name.c_str(),
              static_cast<long long>(seq),
              static_cast<long long>(trainer::peak_memory_bytes(device)));
  return 0;
}
