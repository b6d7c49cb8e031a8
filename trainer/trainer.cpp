#include "trainer/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "common/error.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/progress.h"
#include "engine/model.h"
#include "engine/peft_adapter.h"
#include "engine/tensor_io.h"
#include "trainer/batch_plan.h"
#include "trainer/checkpoint.h"
#include "trainer/collate.h"
#include "trainer/failure_gate.h"
#include "trainer/grad_reducer.h"
#include "trainer/lora.h"
#include "trainer/loss_plot.h"
#include "trainer/metrics_log.h"
#include "trainer/sft_loss.h"

namespace synthpert::trainer {

using nlohmann::json;

namespace {

TrainBatch make_batch(const TrainOptions& o, const std::vector<SftExample>& ex,
                      const std::vector<int64_t>& idx) {
  return o.packing ? collate_packed(ex, idx, o.max_seq_len) : collate_padded(ex, idx);
}

// Mean token loss over the validation set, split across processes.
double validation_loss(const TrainOptions& o, const engine::Transformer& model,
                       const std::vector<SftExample>& val, Communicator& comm) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> mine;
  for (int64_t i = comm.rank(); i < static_cast<int64_t>(val.size()); i += comm.world())
    mine.push_back(i);
  double sums[2] = {0, 0};  // loss sum, target count
  {
    // A process that fails here (out of memory on its share) stops the others
    // at this gate, not in the all-reduce below until --dist-timeout.
    FailureGate evaluated(comm, "computing the validation loss");
    for (size_t lo = 0; lo < mine.size(); lo += o.batch) {
      std::vector<int64_t> idx(mine.begin() + lo,
                               mine.begin() + std::min(mine.size(), lo + static_cast<size_t>(o.batch)));
      const auto b = make_batch(o, val, idx);
      sums[0] += sft_loss_sum(model, b, false).item<double>();
      sums[1] += static_cast<double>(b.targets_count);
    }
    evaluated.pass();
  }
  auto t = torch::tensor({sums[0], sums[1]}, torch::kFloat64);
  comm.all_reduce_sum(t, 16);
  return t[0].item<double>() / std::max(1.0, t[1].item<double>());
}

// The starting adapter by content: a folder rewritten between runs is
// another run.
json init_adapter_identity(const std::string& dir) {
  if (dir.empty()) return "";
  json id = engine::peft_adapter_digests(dir);
  id["path"] = std::filesystem::absolute(dir).lexically_normal().string();
  return id;
}

// The batch plan of these options over `world` processes.
PlanOptions plan_options(const TrainOptions& o, int64_t world) {
  PlanOptions po;
  po.batch = o.batch;
  po.grad_accum = o.grad_accum;
  po.world = world;
  po.seed = o.seed;
  po.epochs = o.epochs;
  po.max_steps = o.max_steps;
  return po;
}

// Settings that would train nothing or diverge at once, refused before
// anything is loaded: beta 1 makes AdamW's bias correction 0 (an infinite
// step), and a negative period would quietly read as 0.
void check_options(const TrainOptions& o) {
  auto finite = [](double v) { return std::isfinite(v); };
  SP_CHECK_INPUT(finite(o.lr) && o.lr >= 0, "--lr must be a finite number >= 0, got ", o.lr);
  SP_CHECK_INPUT(o.adamw.beta1 >= 0 && o.adamw.beta1 < 1, "--adam-beta1 must be in [0, 1), got ", o.adamw.beta1);
  SP_CHECK_INPUT(o.adamw.beta2 >= 0 && o.adamw.beta2 < 1, "--adam-beta2 must be in [0, 1), got ", o.adamw.beta2);
  SP_CHECK_INPUT(finite(o.adamw.eps) && o.adamw.eps > 0, "--adam-eps must be positive, got ", o.adamw.eps);
  SP_CHECK_INPUT(finite(o.adamw.weight_decay) && o.adamw.weight_decay >= 0, "--weight-decay must be >= 0, got ",
                 o.adamw.weight_decay);
  SP_CHECK_INPUT(finite(o.max_grad_norm) && o.max_grad_norm >= 0, "--max-grad-norm must be >= 0 (0: off), got ",
                 o.max_grad_norm);
  SP_CHECK_INPUT(o.eval_every >= 0, "--eval-every must be >= 0, got ", o.eval_every);
  SP_CHECK_INPUT(o.save_every >= 0, "--save-every must be >= 0, got ", o.save_every);
  SP_CHECK_INPUT(o.keep_checkpoints >= 0, "--keep-checkpoints must be >= 0 (0: all), got ", o.keep_checkpoints);
  SP_CHECK_INPUT(!(o.full && o.merge), "--merge merges a LoRA adapter into the model; --full writes DIR/model itself");
  SP_CHECK_INPUT(!(o.full && !o.init_adapter.empty()),
                 "--init-adapter starts a LoRA run; --full trains the weights themselves (merge the adapter "
                 "into a model first to fine-tune it fully)");
  SP_CHECK_INPUT(o.full || !o.init_adapter.empty() || (finite(o.lora.alpha) && o.lora.alpha > 0),
                 "--lora-alpha must be positive, got ", o.lora.alpha);
  // The checks the batch plan, the schedule and the adapter make again once
  // the model is loaded, here before it is: minutes for a large one.
  BatchPlan::check(plan_options(o, 1));
  check_warmup(o.warmup_steps, o.warmup_ratio);
  if (!o.full && o.init_adapter.empty()) check_lora_spec(o.lora);
}

// Every process reads, tokenizes and plans on its own; a node with another
// data file, tokenizer or option would train on other examples, or run
// another number of steps and hang in a collective. So the processes compare
// a digest of their settings and tokenized examples at the gate that ends
// their preparation, before the model is loaded. Paths are left out: nodes
// may mount the same files in different places.
void check_processes_agree(json fingerprint, const SftDataset& data, const std::vector<SftExample>& val,
                           Communicator& comm, FailureGate& gate) {
  fingerprint.erase("model");
  if (fingerprint["init_adapter"].is_object()) fingerprint["init_adapter"].erase("path");
  // A --tokenizer folder is named by its path; its token ids are in the digest.
  if (fingerprint["data"].is_object()) fingerprint["data"].erase("tokenizer");
  auto bytes = [](const auto& v) {
    return std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(v[0]));
  };
  uint64_t h = fnv1a64(fingerprint.dump());
  for (const auto* set : {&data.examples, &val}) {
    h = fnv1a64(std::to_string(set->size()) + ";", h);
    for (const auto& e : *set) h = fnv1a64(bytes(e.loss_mask), fnv1a64(bytes(e.ids), h));
  }
  SP_CHECK_INPUT(gate.pass(h), "process ", comm.rank(), " of ", comm.world(),
                 " differs from another in its settings or its tokenized data (", data.examples.size(),
                 " training and ", val.size(),
                 " validation examples here): every process needs the same options, data file and tokenizer");
}

std::string fmt(const char* f, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

// A written model folder is one `eval`, `serve` and `generate` can take: the
// tokenizer files of the run (its --tokenizer, else the model's) and the base
// model's generation_config.json (its EOS ids) go beside the weights.
static void copy_model_companions(const TrainOptions& o, const std::string& out) {
  const std::string tok = o.tokenizer_dir.empty() ? o.model_dir : o.tokenizer_dir;
  auto copy = [&](const std::string& dir, const char* name) {
    const std::string from = path_join(dir, name);
    if (path_exists(from))
      std::filesystem::copy_file(from, path_join(out, name), std::filesystem::copy_options::overwrite_existing);
  };
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                           "chat_template.jinja", "chat_template.json"})
    copy(tok, name);
  copy(o.model_dir, "generation_config.json");
}

json run_fingerprint(const TrainOptions& o, int64_t world) {
  return {{"model", std::filesystem::absolute(o.model_dir).lexically_normal().string()},
          {"full", o.full},
          {"qlora", o.qlora},
          {"double_quant", o.double_quant},
          {"lora_r", o.lora.r},
          {"lora_alpha", o.lora.alpha},
          {"lora_dropout", o.lora.dropout},
          {"rslora", o.lora.rslora},
          {"targets", o.lora.target_modules},
          {"init_adapter", init_adapter_identity(o.init_adapter)},
          {"lr", o.lr},
          {"schedule", static_cast<int>(o.schedule)},
          {"warmup_steps", o.warmup_steps},
          {"warmup_ratio", o.warmup_ratio},
          {"adam_beta1", o.adamw.beta1},
          {"adam_beta2", o.adamw.beta2},
          {"adam_eps", o.adamw.eps},
          {"weight_decay", o.adamw.weight_decay},
          {"max_grad_norm", o.max_grad_norm},
          {"batch", o.batch},
          {"grad_accum", o.grad_accum},
          {"world_size", world},
          {"epochs", o.epochs},
          {"max_steps", o.max_steps},
          {"packing", o.packing},
          {"max_seq_len", o.max_seq_len},
          {"seed", o.seed},
          {"dtype", o.dtype},
          {"data", o.data_identity}};
}

namespace {

// What the run is doing, for the error of a lost peer; read on the peer
// watch's thread too.
class Phase {
 public:
  void set(std::string text) {
    std::lock_guard<std::mutex> lock(mu_);
    text_ = std::move(text);
  }
  std::string get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  mutable std::mutex mu_;
  std::string text_ = "starting";
};

// The run; `phase` says what it is doing.
TrainResult train(const TrainOptions& o, const SftDataset& data, const std::vector<SftExample>& val, Communicator& comm,
                  const TrainHooks& hooks, Phase& phase) {
  const bool rank0 = comm.rank() == 0;
  const std::string ckpt_root = path_join(o.out_dir, "checkpoints");
  phase.set("checking its options and data against the others'");
  FailureGate prepared(comm, "checking its options and output folder");
  check_options(o);
  const json fingerprint = run_fingerprint(o, comm.world());
  // Decide fresh vs resumed before anything in the output folder changes.
  std::optional<std::string> resume_from;
  if (o.resume) {
    resume_from = latest_checkpoint(ckpt_root);
    SP_CHECK_INPUT(resume_from, ckpt_root, ": --resume given but there is no checkpoint to resume");
    check_same_run(checkpoint_run(*resume_from), fingerprint, *resume_from);
  } else {
    SP_CHECK_INPUT(!latest_checkpoint(ckpt_root), ckpt_root,
                   ": holds checkpoints of an earlier run; pass --resume to continue it or choose "
                   "another --out (nothing was changed)");
  }
  check_processes_agree(fingerprint, data, val, comm, prepared);

  phase.set("loading the model");
  FailureGate loaded(comm, "loading the model, adapter or checkpoint");

  engine::LoadOptions lo;
  lo.dtype = engine::parse_dtype(o.dtype);
  // The backward starts from loss / targets (~1e-6 per logit at thousands of
  // targets), below f16's smallest normal 6e-5: without loss scaling, which
  // this trainer does not do, f16 gradients underflow silently.
  SP_CHECK_INPUT(lo.dtype != torch::kFloat16, "--dtype f16 cannot train: its gradients underflow without loss "
                                              "scaling, which the trainer does not do; use bf16 (or f32)");
  lo.nf4 = o.qlora;
  lo.nf4_double_quant = o.double_quant;
  SP_CHECK_INPUT(o.qlora || !o.double_quant, "--double-quant needs --qlora (it quantises the NF4 scales)");
  lo.device = engine::parse_device(o.device);
  SP_CHECK_INPUT(!(o.full && o.qlora), "--full and --qlora exclude each other (NF4 weights are frozen)");
  auto model = engine::Transformer::load(o.model_dir, lo);
  model.checkpoint_layers = o.checkpoint_layers;
  engine::LoraSpec lora = o.lora;
  std::map<std::string, torch::Tensor> init_tensors;  // --init-adapter's, as its file holds them
  if (!o.full) {
    if (o.init_adapter.empty()) {
      attach_lora(model, lora, o.seed);
    } else {
      lora = engine::load_peft_adapter(o.init_adapter, model, &init_tensors);
    }
  }
  ParamSet params = o.full ? ParamSet::full(model) : ParamSet::lora(model);
  if (!init_tensors.empty()) {
    // The masters start from the file's float32 values, not from the copies
    // rounded to the compute dtype that were attached above.
    params.load_views(params.master(), init_tensors, engine::peft_weights_path(o.init_adapter));
    init_tensors.clear();
    params.write_back();
  }

  std::vector<int64_t> lengths;
  for (const auto& e : data.examples) lengths.push_back(static_cast<int64_t>(e.ids.size()));
  const BatchPlan plan(lengths, plan_options(o, comm.world()));
  LrSchedule sched;
  sched.kind = o.schedule;
  sched.base_lr = o.lr;
  sched.total_steps = plan.total_steps();
  sched.warmup_steps = warmup_from(o.warmup_steps, o.warmup_ratio, plan.total_steps());
  AdamW opt(params.numel(), model.device(), o.adamw);

  TrainResult result;
  result.total_steps = plan.total_steps();
  if (resume_from) result.start_step = load_checkpoint(*resume_from, params, opt);

  std::unique_ptr<MetricsLog> log;
  if (rank0) {
    make_dirs(o.out_dir);
    log = std::make_unique<MetricsLog>(path_join(o.out_dir, "metrics.jsonl"), o.resume,
                                       result.start_step);
  }
  auto write_plot = [&] {
    if (rank0)
      write_file_atomic(path_join(o.out_dir, "loss.svg"),
                        loss_curve_svg(read_metrics(log->path()), "synthpert train: " + o.out_dir));
  };

  // With a process group, gradients are summed bucket by bucket while the
  // step's last backward runs; a single process has nothing to sum.
  std::unique_ptr<GradReducer> reducer;
  if (comm.backend() != "none") reducer = std::make_unique<GradReducer>(params, comm, o.bucket_bytes);

  std::unique_ptr<ProgressBar> bar;
  if (rank0 && o.progress)
    bar = std::make_unique<ProgressBar>("train", plan.total_steps() - result.start_step, "step");
  loaded.pass();
  for (int64_t step = result.start_step; step < plan.total_steps(); ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = sched.lr(step);
    StepRecord rec;
    rec.step = step + 1;
    rec.lr = lr;
    phase.set("running step " + std::to_string(rec.step));
    for (int64_t i : plan.step_examples(step)) {
      rec.targets += count_targets(data.examples[i]);
      rec.tokens += static_cast<int64_t>(data.examples[i].ids.size());
    }
    std::vector<std::vector<int64_t>> micro_idx;
    int64_t last_micro = -1;  // this process's last micro-batch with examples
    for (int64_t micro = 0; micro < o.grad_accum; ++micro) {
      micro_idx.push_back(plan.micro_batch(step, comm.rank(), micro));
      if (!micro_idx.back().empty()) last_micro = micro;
    }
    double local_loss = 0;
    // A process that fails inside the step (out of memory on one GPU) still
    // starts every gradient bucket, as the others do, and then stops them all
    // at this gate, instead of leaving them in the next all-reduce until
    // --dist-timeout.
    FailureGate stepped(comm, "running step " + std::to_string(rec.step));
    try {
      for (int64_t micro = 0; micro <= last_micro; ++micro) {
        const auto& idx = micro_idx[static_cast<size_t>(micro)];
        if (idx.empty()) continue;  // short last step of an epoch
        if (hooks.on_micro_batch) hooks.on_micro_batch(rec.step, micro);
        // Dropout draws depend only on (seed, step, micro-batch slot).
        torch::manual_seed(mix_seed(mix_seed(o.seed, static_cast<uint64_t>(step)),
                                    static_cast<uint64_t>(micro * comm.world() + comm.rank())));
        const auto batch = make_batch(o, data.examples, idx);
        const auto loss_sum = sft_loss_sum(model, batch, true);
        if (reducer && micro == last_micro) reducer->arm();
        (loss_sum / static_cast<double>(rec.targets)).backward();
        if (reducer)
          reducer->after_backward();
        else
          params.accumulate_grads();
        local_loss += loss_sum.item<double>();
      }
    } catch (...) {
      try {
        if (reducer) reducer->finish();
      } catch (...) {
        // This process's own error is the one to show.
      }
      throw;
    }
    if (reducer) reducer->finish();
    stepped.pass();
    const bool stop_here = o.stop_requested && o.stop_requested->load();
    auto loss_t = torch::tensor({local_loss, stop_here ? 1.0 : 0.0}, torch::kFloat64);
    comm.all_reduce_sum(loss_t, 16);
    rec.loss = loss_t[0].item<double>() / static_cast<double>(rec.targets);
    // A stop asked of any process (Ctrl-C may reach one node only) ends the
    // run after this step on all of them.
    const bool stop = loss_t[1].item<double>() > 0;
    // A hook may be set on some processes only (process 0's --grad-dump): its
    // failure is raised at this step's record gate, which every process
    // reaches, so the others stop there too.
    std::exception_ptr hook_failure;
    if (hooks.on_gradients) {
      try {
        hooks.on_gradients(rec, params);
      } catch (...) {
        hook_failure = std::current_exception();
      }
    }
    rec.grad_norm = clip_grad_norm(params.grad(), o.max_grad_norm);
    // A non-finite loss or gradient would turn every weight into NaN at this
    // step and in every checkpoint after. Both are the same on every process
    // (reduced), so all stop here together, before the optimizer step.
    if (!std::isfinite(rec.loss) || !std::isfinite(rec.grad_norm)) {
      const auto newest = latest_checkpoint(ckpt_root);
      throw std::runtime_error(str_cat(
          "step ", rec.step, ": the loss is ", rec.loss, " and the gradient norm ", rec.grad_norm,
          "; stopped before the optimizer step. ",
          newest ? "The newest checkpoint (" + *newest + ") is intact: --resume from it with a lower --lr"
                 : std::string("No checkpoint was written; lower --lr"),
          ", or look for a broken example in this step"));
    }
    if (!opt.fused_step(params.master(), params.grad(), params.entries(), lr)) {
      opt.step(params.master(), params.grad(), params.decay_mask(), lr);
      params.write_back();
    }
    params.zero_grad();
    result.steps.push_back(rec);
    if (hooks.on_step) hooks.on_step(rec);

    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tps = dt > 0 ? static_cast<double>(rec.tokens) / dt : 0.0;
    const bool last = rec.step == plan.total_steps();
    const bool periodic = o.save_every > 0 && rec.step % o.save_every == 0;
    const bool interrupted = stop && !last;
    // Always at the last step, so the run's final val_loss is of the final
    // weights; not at an interruption, so a resumed run logs what an
    // uninterrupted one does. A collective, so it runs before the gate below.
    std::optional<double> val_loss;
    if (!val.empty() && (last || (o.eval_every > 0 ? rec.step % o.eval_every == 0 : periodic))) {
      val_loss = validation_loss(o, model, val, comm);
      result.val_losses.emplace_back(rec.step, *val_loss);
    }
    // Only process 0 writes; a full disk or a lost folder there must stop
    // the others at this step, not leave them waiting in the next step's
    // all-reduce until --dist-timeout.
    FailureGate recorded(comm, "writing the metrics log, a checkpoint or a gradient dump");
    if (hook_failure) std::rethrow_exception(hook_failure);
    if (rank0) {
      log->write({{"step", rec.step}, {"loss", rec.loss}, {"lr", rec.lr}, {"grad_norm", rec.grad_norm},
                  {"tokens", rec.tokens}, {"tokens_per_s", tps}, {"peak_mem_bytes", peak_memory_bytes(o.device)}});
      if (val_loss) log->write({{"step", rec.step}, {"val_loss", *val_loss}});
      if (bar)
        bar->advance(1, "loss " + fmt("%.4f", rec.loss) + "  lr " + fmt("%.3g", lr) + "  " +
                            fmt("%.0f", tps) + " tok/s");
      if (periodic || last || interrupted) {
        save_checkpoint(ckpt_root, rec.step, params, opt, fingerprint, o.keep_checkpoints);
        write_plot();
      }
      if (interrupted) result.checkpoint = latest_checkpoint(ckpt_root).value_or("");
    }
    recorded.pass();
    if (interrupted) {
      result.interrupted = true;
      break;
    }
  }
  if (bar) bar->finish();
  // An interrupted run leaves its checkpoint only: DIR/adapter is the
  // finished run's.
  if (result.interrupted) return result;

  phase.set("writing the trained adapter or model");
  FailureGate written(comm, "writing the trained adapter or model");
  if (rank0) {
    const auto st = engine::to_st_dtype(model.dtype());
    if (o.full) {
      result.output_dir = path_join(o.out_dir, "model");
      model.save(result.output_dir, st);
      copy_model_companions(o, result.output_dir);
    } else {
      // The adapter is written from the float32 masters, not the rounded
      // compute-dtype copies the forward used.
      for (const auto& [name, master] : params.views(params.master()))
        for (auto& [module, lin] : model.named_linears())
          if (lin->lora && name == engine::peft_key(module, true)) lin->lora->A = master;
          else if (lin->lora && name == engine::peft_key(module, false)) lin->lora->B = master;
      result.output_dir = path_join(o.out_dir, "adapter");
      engine::save_peft_adapter(result.output_dir, model, lora,
                                std::filesystem::absolute(o.model_dir).string(), engine::StDType::F32);
      if (o.merge) {
        model.save(path_join(o.out_dir, "model"), o.qlora ? engine::StDType::F32 : st, true);
        copy_model_companions(o, path_join(o.out_dir, "model"));
      }
    }
    write_plot();
    for (const auto& line : read_metrics(log->path())) {
      if (line.contains("loss")) result.final_loss = line["loss"].get<double>();
      if (line.contains("val_loss"))
        result.final_val_loss = {line["step"].get<int64_t>(), line["val_loss"].get<double>()};
    }
  }
  written.pass();
  return result;
}

// What a process that lost a peer while `phase` says, and what can be saved:
// process 0 writes a checkpoint only after every process finished the step
// it belongs to.
std::string stopped_message(const TrainOptions& o, const Communicator& comm, const std::string& phase,
                            const std::string& why) {
  std::optional<std::string> newest;
  try {
    newest = latest_checkpoint(path_join(o.out_dir, "checkpoints"));
  } catch (const std::exception&) {
    // An unreadable folder: the lost peer stays the error to report.
  }
  return str_cat("process ", comm.rank(), " of ", comm.world(), " stopped while ", phase, ": ", why,
                 newest
                     ? "; the newest checkpoint (" + *newest + ") is complete: start all processes again with --resume"
                     : std::string());
}

}  // namespace

TrainResult run_training(const TrainOptions& o, const SftDataset& data,
                         const std::vector<SftExample>& val, Communicator& comm,
                         const TrainHooks& hooks) {
  Phase phase;
  // A process the peer watch finds lost ends this one from the watch's
  // thread (a collective waiting for it cannot be woken); it says the same
  // as a failed collective would.
  const PeerLostHandler outer = comm.peer_lost_handler();
  comm.set_peer_lost_handler([&o, &comm, &phase, outer](const std::string& why) {
    const std::string message = stopped_message(o, comm, phase.get(), why);
    if (outer)
      outer(message);
    else
      std::fprintf(stderr, "%s\n", message.c_str());
  });
  struct RestoreHandler {
    Communicator& comm;
    PeerLostHandler outer;
    ~RestoreHandler() { comm.set_peer_lost_handler(outer); }
  } restore{comm, outer};
  try {
    return train(o, data, val, comm, hooks, phase);
  } catch (const CommunicationError& e) {
    throw CommunicationError(stopped_message(o, comm, phase.get(), e.what()));
  }
}

}  // namespace synthpert::trainer
