// `synthpert eval`: a model on a PerturbQA split, beside the baselines (perturb/eval.h).
#include <cstdio>
#include <cstdlib>

#include "apps/command.h"
#include "common/error.h"
#include "apps/interrupt.h"
#include "perturb/prompt.h"
#include "perturb/eval.h"

namespace synthpert::cli {
namespace {

struct Opts {
  perturb::EvalConfig cfg;
  std::string out, offsets;
  bool chat = false, no_chat = false;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  auto& c = o->cfg;
  cmd.add_option("--model", c.model_dir, "model folder (Hugging Face layout, with its tokenizer)");
  cmd.add_option("--endpoint", c.endpoint.url,
                 "instead of --model: an OpenAI-compatible API base URL (generate mode; key from $SYNTHPERT_EVAL_API_KEY, "
                 "else $OPENAI_API_KEY)");
  cmd.add_option("--endpoint-model", c.endpoint.model, "the model name at --endpoint");
  cmd.add_option("--retries", c.endpoint_retry.max_retries, "--endpoint: retries after 429, 5xx or no response")
      ->capture_default_str();
  cmd.add_option("--timeout", c.endpoint.timeout_s, "--endpoint: seconds to wait for one reply")->capture_default_str();
  cmd.add_option("--adapter", c.adapter_dir, "LoRA adapter folder (PEFT format)");
  cmd.add_option("--perturbqa", c.data_dir, "PerturbQA CSV folder (else $PERTURBQA_DIR, ../shared/perturbqa)");
  cmd.add_option("--split", c.split, "default | default:CELL[,CELL] | holdout:CELL")->capture_default_str();
  add_split_part_options(cmd, c.part, c.val_fraction, c.val_seed);
  cmd.add_option("--mode", c.mode, "score (answer log-likelihoods) | generate (parse the written answer)")
      ->capture_default_str();
  cmd.add_option("--prompt-template", c.prompt, perturb::prompt_template_choices())->capture_default_str();
  cmd.add_option("--prompt-cell", c.prompt_cell,
                 "render every row's cell line as this word (for students trained without cell identity)");
  auto* chat = cmd.add_flag("--chat", o->chat, "require the model's chat template");
  cmd.add_flag("--no-chat-template", o->no_chat, "plain prompts even if the model has a chat template")->excludes(chat);
  cmd.add_option("--chat-template", c.chat_template_file, "chat template file overriding the model's");
  cmd.add_option("--fraction", c.fraction, "evaluate this fraction of the rows (seeded, per row)")->capture_default_str();
  cmd.add_option("--seed", c.seed, "subsampling, sampling and bootstrap seed")->transform(whole_number())->capture_default_str();
  cmd.add_option("--batch", c.batch, "rows per forward batch (--endpoint: requests in flight)")->capture_default_str();
  auto* max_new = cmd.add_option("--max-new-tokens", c.max_new_tokens, "generate mode: token budget per answer")
                      ->capture_default_str();
  auto* temperature = cmd.add_option("--temperature", c.sampling.temperature,
                                     "generate mode: 0 = greedy (--endpoint: sent only when given)")
                          ->capture_default_str();
  auto* top_p = cmd.add_option("--top-p", c.sampling.top_p, "generate mode: nucleus sampling (--endpoint: sent only when given)")
                    ->capture_default_str();
  auto* top_k = cmd.add_option("--top-k", c.sampling.top_k, "generate mode: 0 = off")->capture_default_str();
  auto* device = cmd.add_option("--device", c.device, "cpu | cuda[:N]")->capture_default_str();
  auto* dtype = cmd.add_option("--dtype", c.dtype, "f32 | bf16 | f16")->capture_default_str();
  cmd.add_option("--offsets", o->offsets, "score mode: decision offsets JSON (from `synthpert calibrate`)");
  cmd.add_flag("--blind-view", c.blind_view,
               "score mode: mean of each row's log-likelihoods with and without its pert and gene names");
  cmd.add_option("--bootstrap", c.bootstrap, "bootstrap resamples for ci95 (0: none)")->transform(whole_number())->capture_default_str();
  cmd.add_flag("--overwrite", c.overwrite, "start over instead of resuming an earlier run in --out");
  cmd.add_option("--out", o->out, "output folder")->required();
  return [o, temperature, top_p, top_k, max_new, device, dtype] {
    auto& c = o->cfg;
    // A flag that would change nothing is refused, not silently dropped.
    if (c.mode == "score")
      for (const auto* f : {max_new, temperature, top_p, top_k})
        SP_CHECK_INPUT(!f->count(), f->get_name(),
                       " applies to --mode generate only (score mode compares the three answers' log-likelihoods)");
    if (!c.endpoint.url.empty())
      for (const auto* f : {device, dtype})
        SP_CHECK_INPUT(!f->count(), f->get_name(), " applies to a local --model; --endpoint runs where it is served");
    SP_CHECK_INPUT(c.endpoint_retry.max_retries >= 0, "--retries: expected >= 0, got ", c.endpoint_retry.max_retries);
    SP_CHECK_INPUT(c.endpoint.timeout_s > 0, "--timeout: expected > 0 seconds, got ", c.endpoint.timeout_s);
    if (!c.endpoint.url.empty()) {
      if (temperature->count()) c.endpoint_options.temperature = c.sampling.temperature;
      if (top_p->count()) c.endpoint_options.top_p = c.sampling.top_p;
      for (const char* name : {"SYNTHPERT_EVAL_API_KEY", "OPENAI_API_KEY"})
        if (const char* k = std::getenv(name); k && *k && c.endpoint.api_key.empty()) c.endpoint.api_key = k;
    }
    if (!o->offsets.empty()) o->cfg.offsets = perturb::load_offsets(o->offsets);
    o->cfg.chat = o->chat ? perturb::ChatMode::kOn : o->no_chat ? perturb::ChatMode::kOff : perturb::ChatMode::kAuto;
    o->cfg.cancel = &install_graceful_interrupt(
        "\nsynthpert eval: finishing the rows in flight and writing them; Ctrl-C again to stop at once\n");
    const auto result = perturb::run_eval(o->cfg, o->out);
    if (result.value("interrupted", false)) {
      print_json(result);
      std::fprintf(stderr, "synthpert eval: interrupted after %lld of %lld rows; run the same command again to "
                           "continue\n",
                   static_cast<long long>(result["rows_done"].get<int64_t>()),
                   static_cast<long long>(result["rows"].get<int64_t>()));
      return 130;
    }
    nlohmann::json summary = {{"out", o->out}, {"rows", result["rows"]}};
    for (const char* k : {"accuracy", "macro_f1"}) summary["model"][k] = result["model"][k];
    summary["model"]["auroc"] = result["model"]["auroc"];
    for (auto& [name, m] : result["baselines"].items())
      summary["baselines"][name] = {{"accuracy", m["accuracy"]}, {"macro_f1", m["macro_f1"]}, {"auroc", m["auroc"]}};
    print_json(summary);
    return 0;
  };
}

const CommandRegistrar reg("eval", "Evaluate a model on a PerturbQA split (score or generate mode) beside the baselines",
                           setup);

}  // namespace
}  // namespace synthpert::cli
