// `synthpert train`: supervised fine-tuning (LoRA, QLoRA or full) on traces,
// SynthPert CSVs or pre-tokenized JSONL; data parallel when launched with
// torchrun-style or Slurm variables (docs/trainer.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include <torch/cuda.h>

#include "apps/command.h"
#include "apps/interrupt.h"
#include "common/error.h"
#include "common/fs.h"
#include "engine/config.h"
#include "engine/tensor_io.h"
#include "perturb/trace_review.h"
#include "trainer/failure_gate.h"
#include "trainer/lora.h"
#include "trainer/sft_data.h"
#include "trainer/system_prompt.h"
#include "trainer/trainer.h"

namespace synthpert::cli {
namespace {

struct Opts {
  trainer::TrainOptions t;
  std::string data, targets = "q,k,v,o,gate,up,down", schedule = "linear", overlong = "truncate";
  std::string system_prompt_file, prompt_template, tokenizer, grad_dump, accept;
  double val_fraction = 0.1, bucket_mb = 25, heartbeat_s = 60;
  int64_t timeout_s = 1800;
  bool no_progress = false;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  auto& t = o->t;
  t.lora.r = 32;
  t.lora.alpha = 32;
  cmd.add_option("--model", t.model_dir, "Hugging Face model folder (the base)")->required();
  cmd.add_option("--data", o->data, "traces .jsonl, SynthPert .csv, or pre-tokenized .jsonl")->required();
  cmd.add_option("--out", t.out_dir, "output folder")->required();
  // The adapter's shape and scaling: with --init-adapter they come from its
  // adapter_config.json, so giving them too is refused rather than ignored.
  const std::vector<CLI::Option*> adapter_shape = {
      cmd.add_option("--lora-r", t.lora.r, "LoRA rank")->capture_default_str(),
      cmd.add_option("--lora-alpha", t.lora.alpha, "LoRA alpha")->capture_default_str(),
      cmd.add_option("--lora-dropout", t.lora.dropout, "dropout on the adapter input")->capture_default_str(),
      cmd.add_flag("--rslora", t.lora.rslora, "scale alpha/sqrt(r) instead of alpha/r"),
      cmd.add_option("--targets", o->targets, "LoRA target modules")->capture_default_str()};
  cmd.add_option("--init-adapter", t.init_adapter,
                 "start from this PEFT adapter (its adapter_config.json sets rank, alpha, dropout, rsLoRA "
                 "and targets)");
  cmd.add_flag("--full", t.full, "fine-tune every weight instead of a LoRA adapter");
  cmd.add_flag("--qlora", t.qlora, "NF4 base weights (QLoRA)");
  cmd.add_flag("--double-quant", t.double_quant,
               "with --qlora: quantise the NF4 scales to 8 bits too (QLoRA's double quantisation)");
  cmd.add_flag("--merge", t.merge, "also write DIR/model with the adapter merged in");
  cmd.add_option("--epochs", t.epochs, "passes over the data")->capture_default_str();
  cmd.add_option("--max-steps", t.max_steps, "stop after N optimizer steps (0: epochs decide)")->capture_default_str();
  cmd.add_option("--lr", t.lr, "peak learning rate")->capture_default_str();
  cmd.add_option("--schedule", o->schedule, "linear | cosine | constant")->capture_default_str();
  cmd.add_option("--warmup-steps", t.warmup_steps, "linear warmup steps")->capture_default_str();
  cmd.add_option("--warmup-ratio", t.warmup_ratio, "warmup as a fraction of all steps (if --warmup-steps is 0)")->capture_default_str();
  cmd.add_option("--weight-decay", t.adamw.weight_decay, "AdamW decoupled weight decay (matrices only)")->capture_default_str();
  cmd.add_option("--adam-beta1", t.adamw.beta1, "")->capture_default_str();
  cmd.add_option("--adam-beta2", t.adamw.beta2, "")->capture_default_str();
  cmd.add_option("--adam-eps", t.adamw.eps, "")->capture_default_str();
  cmd.add_option("--max-grad-norm", t.max_grad_norm, "clip the global gradient norm (0: off)")->capture_default_str();
  cmd.add_option("--batch", t.batch, "examples per micro-batch per process")->capture_default_str();
  cmd.add_option("--grad-accum", t.grad_accum, "micro-batches per optimizer step")->capture_default_str();
  cmd.add_option("--max-seq-len", t.max_seq_len, "longest example (and packed row) in tokens")->capture_default_str();
  cmd.add_option("--overlong", o->overlong, "examples over --max-seq-len: truncate | drop | error")->capture_default_str();
  cmd.add_flag("--packing", t.packing, "pack each micro-batch's examples into rows (no cross-example attention)");
  cmd.add_option("--seed", t.seed, "seed of data order, split, LoRA init and dropout")->transform(whole_number())->capture_default_str();
  cmd.add_option("--val-fraction", o->val_fraction, "held-out fraction for val_loss (0: none)")->capture_default_str();
  cmd.add_option("--eval-every", t.eval_every, "val_loss every N steps (0: at checkpoints and the end)")->capture_default_str();
  cmd.add_option("--save-every", t.save_every, "checkpoint every N steps (0: at the end)")->capture_default_str();
  cmd.add_option("--keep-checkpoints", t.keep_checkpoints, "newest checkpoints kept (0: all)")->capture_default_str();
  cmd.add_flag("--resume", t.resume, "continue the run in --out from its newest checkpoint");
  cmd.add_option("--dtype", t.dtype, "compute dtype f32 | bf16 (masters stay f32; f16 is refused: no loss scaling)")->capture_default_str();
  cmd.add_option("--device", t.device, "cpu | cuda (cuda:LOCAL_RANK when data parallel)")->capture_default_str();
  cmd.add_flag("--activation-checkpointing", t.checkpoint_layers, "recompute each decoder layer in backward");
  cmd.add_option("--accept", o->accept,
                 "train only on traces with these judge grades, e.g. excellent,good (a trace's \"judge\", "
                 "a SynthPert CSV's critic_evaluation)");
  cmd.add_option("--system-prompt", o->system_prompt_file,
                 "file with the system message for CSV rows and traces without one (empty file: none)");
  cmd.add_option("--prompt-template", o->prompt_template,
                 "without --system-prompt: the [system] text of this prompt template (built-in name or "
                 "file; default reasoning)");
  cmd.add_option("--tokenizer", o->tokenizer, "tokenizer + chat template folder (default: --model)");
  cmd.add_option("--bucket-mb", o->bucket_mb,
                 "data parallel: gradient all-reduce bucket size in MiB (buckets start during backward)")
      ->capture_default_str();
  cmd.add_option("--dist-timeout", o->timeout_s, "seconds to wait for the other processes")->capture_default_str();
  cmd.add_option("--dist-heartbeat", o->heartbeat_s,
                 "data parallel: seconds a process may go silent (killed, frozen) before the others stop, "
                 "naming it (0: never; they then wait out --dist-timeout in a collective)")
      ->capture_default_str();
  cmd.add_flag("--no-progress", o->no_progress, "no progress bar on stderr");
  cmd.add_option("--grad-dump", o->grad_dump,
                 "write step 1's gradient (all-reduced, before clipping) to this safetensors file "
                 "(parity checks against other trainers)");
  return [o, adapter_shape] {
    auto& t = o->t;
    for (const CLI::Option* opt : adapter_shape) {
      SP_CHECK_INPUT(t.init_adapter.empty() || opt->count() == 0, opt->get_name(),
                     " cannot be combined with --init-adapter: the adapter's adapter_config.json sets it");
      SP_CHECK_INPUT(!t.full || opt->count() == 0, opt->get_name(),
                     " shapes a LoRA adapter; --full trains the weights themselves");
    }
    t.schedule = trainer::parse_schedule(o->schedule);
    t.progress = !o->no_progress;
    SP_CHECK_INPUT(o->bucket_mb > 0, "--bucket-mb must be positive, got ", o->bucket_mb);
    SP_CHECK_INPUT(o->heartbeat_s >= 0, "--dist-heartbeat must be 0 (off) or positive, got ", o->heartbeat_s);
    t.bucket_bytes = std::max<int64_t>(1, static_cast<int64_t>(o->bucket_mb * 1024 * 1024));
    if (!t.full) t.lora.target_modules = trainer::parse_lora_targets(o->targets);
    const auto env = trainer::read_dist_env();
    if (env.world > 1 && t.device.rfind("cuda", 0) == 0)
      t.device = "cuda:" + std::to_string(trainer::local_cuda_index(env.local_rank, torch::cuda::device_count()));

    // The process group forms first, so a process that cannot read its data
    // tells the others at the gate instead of leaving them waiting for it.
    auto comm = trainer::Communicator::create(env, engine::parse_device(t.device), std::chrono::seconds(o->timeout_s),
                                              std::chrono::milliseconds(static_cast<int64_t>(o->heartbeat_s * 1000)));
    comm->set_peer_lost_handler(
        [](const std::string& why) { std::fprintf(stderr, "synthpert train: error: %s\n", why.c_str()); });
    trainer::FailureGate data_read(*comm, "reading its data");
    if (comm->rank() == 0 && !o->grad_dump.empty()) {
      // Found now, not after the first step's minutes of work; inside the
      // gate, so the other processes hear of it at once.
      const auto dump = std::filesystem::absolute(o->grad_dump);
      SP_CHECK_INPUT(!std::filesystem::is_directory(dump), "--grad-dump ", o->grad_dump,
                     " is a folder; name the .safetensors file to write");
      SP_CHECK_INPUT(std::filesystem::is_directory(dump.parent_path()), "--grad-dump ", o->grad_dump, ": folder ",
                     dump.parent_path().string(), " does not exist");
    }
    trainer::DataSource src;
    src.path = o->data;
    src.tokenizer_dir = o->tokenizer.empty() ? t.model_dir : o->tokenizer;
    t.tokenizer_dir = src.tokenizer_dir;
    const auto system = trainer::choose_system_prompt(o->system_prompt_file, o->prompt_template);
    src.system_prompt = system.fn;
    if (!o->accept.empty()) {
      const auto grades = perturb::parse_grade_list(o->accept);
      src.keep = [grades](const trainer::Conversation& c) {
        const auto it = c.fields.find("judge");
        SP_CHECK_INPUT(it != c.fields.end(), c.origin,
                       ": --accept needs a judge grade (a trace's \"judge\", a CSV's critic_evaluation); "
                       "this example has none");
        if (it->second.empty()) return false;  // not graded: no grade is accepted
        const auto grade = perturb::parse_grade(it->second);
        SP_CHECK_INPUT(grade, c.origin, ": no grade in '", it->second.substr(0, 80),
                       "' (expected excellent, good, average, bad or terrible)");
        return grades.count(*grade) > 0;
      };
    }
    trainer::LoadCounts left_out;
    const auto policy = trainer::parse_overlong(o->overlong);
    const auto config = engine::load_config(t.model_dir);
    auto all = trainer::finalize_examples(trainer::load_sft_examples(src, &left_out), t.max_seq_len,
                                          config.vocab_size, policy);
    trainer::SftDataset train;
    std::vector<trainer::SftExample> val;
    std::tie(train.examples, val) =
        trainer::split_validation(std::move(all.examples), o->val_fraction, t.seed);
    train.truncated = trainer::count_truncated(train.examples);
    train.dropped = all.dropped;
    const int64_t val_truncated = trainer::count_truncated(val);
    t.data_identity = {{"file", trainer::file_fingerprint(o->data)},
                       {"val_fraction", o->val_fraction},
                       {"overlong", o->overlong},
                       {"system_prompt", system.identity}};
    if (!o->accept.empty()) t.data_identity["accept"] = o->accept;
    // The token ids come from the tokenizer: another one is another run. (The
    // model's own is covered by the model entry of the fingerprint.)
    const auto tokenizer_path = std::filesystem::absolute(src.tokenizer_dir).lexically_normal();
    if (tokenizer_path != std::filesystem::absolute(t.model_dir).lexically_normal())
      t.data_identity["tokenizer"] = tokenizer_path.string();

    data_read.pass();
    const bool rank0 = comm->rank() == 0;
    if (rank0 && (all.truncated > 0 || train.dropped > 0))
      std::fprintf(stderr,
                   "train: %lld example(s) truncated (%lld of them validation), %lld dropped at --max-seq-len %lld\n",
                   static_cast<long long>(all.truncated), static_cast<long long>(val_truncated),
                   static_cast<long long>(train.dropped), static_cast<long long>(t.max_seq_len));
    trainer::TrainHooks hooks;
    if (!o->grad_dump.empty() && rank0)
      hooks.on_gradients = [o](const trainer::StepRecord& r, const trainer::ParamSet& p) {
        if (r.step == 1) engine::save_tensors(o->grad_dump, p.views(p.grad()));
      };
    t.stop_requested = &install_graceful_interrupt(
        "\nsynthpert train: finishing this step and saving a checkpoint; Ctrl-C again to stop at once\n");
    const auto result = trainer::run_training(t, train, val, *comm, hooks);
    if (result.interrupted) {
      const int64_t done = result.steps.empty() ? result.start_step : result.steps.back().step;
      if (rank0) {
        print_json({{"out", t.out_dir},
                    {"interrupted", true},
                    {"steps_done", done},
                    {"steps", result.total_steps},
                    {"checkpoint", result.checkpoint}});
        std::fprintf(stderr,
                     "synthpert train: interrupted after step %lld of %lld; %s holds it: run the same command "
                     "with --resume to continue\n",
                     static_cast<long long>(done), static_cast<long long>(result.total_steps),
                     result.checkpoint.c_str());
      }
      return 130;
    }
    if (rank0) {
      nlohmann::json out = {{"out", t.out_dir},
                            {"output", result.output_dir},
                            {"steps", result.total_steps},
                            {"resumed_from_step", result.start_step},
                            {"world_size", comm->world()},
                            {"backend", comm->backend()},
                            {"train_examples", train.examples.size()},
                            {"val_examples", val.size()},
                            {"truncated", train.truncated},
                            {"val_truncated", val_truncated},
                            {"dropped", train.dropped}};
      if (t.merge) out["merged_model"] = (std::filesystem::path(t.out_dir) / "model").string();
      if (!o->accept.empty()) out["not_accepted"] = left_out.not_kept;
      if (left_out.without_trace > 0) out["without_trace"] = left_out.without_trace;
      if (result.final_loss) out["final_loss"] = *result.final_loss;
      if (result.final_val_loss) {
        out["val_loss"] = result.final_val_loss->second;
        out["val_loss_step"] = result.final_val_loss->first;
      }
      print_json(out);
    }
    return 0;
  };
}

const CommandRegistrar reg("train", "Fine-tune a model (LoRA, QLoRA or full) on SFT data", setup);

}  // namespace
}  // namespace synthpert::cli
