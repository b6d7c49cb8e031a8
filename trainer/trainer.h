// The training loop of `synthpert train`: LoRA / QLoRA / full fine-tuning of
// a Hugging Face checkpoint on SFT examples, data parallel through c10d.
//
// One optimizer step: for each of grad_accum micro-batches, forward + backward
// of (summed token loss / targets in the global batch), gradients summed into
// the fp32 flat buffer; all-reduce over processes; clip to the global norm;
// AdamW on the fp32 masters; write back. Rank 0 logs, plots and checkpoints.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/peft_adapter.h"
#include "trainer/adamw.h"
#include "trainer/distributed.h"
#include "trainer/lr_schedule.h"
#include "trainer/param_set.h"
#include "trainer/sft_example.h"

namespace synthpert::trainer {

struct TrainOptions {
  // Where the tokenizer and chat template come from (empty: model_dir); a
  // merged or fully trained model is written with them beside its weights.
  std::string tokenizer_dir;
  std::string model_dir, out_dir;
  // What is trained.
  bool full = false;              // every weight instead of a LoRA adapter
  bool qlora = false;             // NF4 base weights
  bool double_quant = false;      // with qlora: the NF4 scales quantised to 8 bits too
  engine::LoraSpec lora;          // targets (HF module names), r, alpha, dropout, rsLoRA
  std::string init_adapter;       // start from this PEFT adapter instead of a fresh one
  // Optimisation.
  double lr = 1e-4;
  Schedule schedule = Schedule::kLinear;
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  AdamWOptions adamw;
  double max_grad_norm = 1.0;
  int64_t batch = 1, grad_accum = 1, epochs = 1, max_steps = 0;
  bool packing = false;
  int64_t max_seq_len = 2048;     // also the packed row capacity
  uint64_t seed = 0;
  std::string dtype = "f32";      // compute dtype: f32 | bf16 | f16
  std::string device = "cpu";
  bool checkpoint_layers = false;
  // Checkpoints and outputs.
  int64_t save_every = 0;         // 0: only at the end
  int64_t keep_checkpoints = 2;
  bool resume = false;
  int64_t eval_every = 0;         // 0: validation at checkpoints and at the end
  bool merge = false;             // also write DIR/model with the adapter merged
  int64_t bucket_bytes = 25 << 20;
  bool progress = true;
  // Set from outside (Ctrl-C): every process finishes the step under way,
  // the run checkpoints it and returns interrupted. One process's request
  // stops them all (it rides on the step's loss all-reduce).
  const std::atomic<bool>* stop_requested = nullptr;
  // Settings that must match on --resume beyond the options above (the data
  // file's fingerprint, the split, ...).
  nlohmann::json data_identity;
};

struct StepRecord {
  int64_t step = 0;  // 1-based: the number of updates made including this one
  double loss = 0, lr = 0, grad_norm = 0;
  int64_t tokens = 0, targets = 0;
};

struct TrainHooks {
  // After the all-reduce, before clipping: the flat fp32 gradient of the step.
  std::function<void(const StepRecord&, const ParamSet&)> on_gradients;
  // After the update of each step.
  std::function<void(const StepRecord&)> on_step;
  // Before the forward of each of this process's micro-batches (`step`
  // counts from 1); tests make one process fail here.
  std::function<void(int64_t step, int64_t micro)> on_micro_batch;
};

struct TrainResult {
  std::vector<StepRecord> steps;      // this process's run (from the resume point)
  std::vector<std::pair<int64_t, double>> val_losses;
  int64_t start_step = 0, total_steps = 0;
  std::string output_dir;             // DIR/adapter or DIR/model
  bool interrupted = false;           // stopped on stop_requested before the last step
  std::string checkpoint;             // process 0, interrupted: the checkpoint to --resume from
  // Process 0, finished: the whole run's last training loss and last
  // validation (step, loss), read back from its metrics log, so a run resumed
  // from any step, its last included, reports them as an uninterrupted one.
  std::optional<double> final_loss;
  std::optional<std::pair<int64_t, double>> final_val_loss;
};

TrainResult run_training(const TrainOptions& opts, const SftDataset& train,
                         const std::vector<SftExample>& val, Communicator& comm,
                         const TrainHooks& hooks = {});

// The settings a resumed run must share with the checkpoint (all options
// that change the numbers, plus data_identity).
nlohmann::json run_fingerprint(const TrainOptions& opts, int64_t world);

}  // namespace synthpert::trainer
