// `synthpert generate`: sample a continuation; JSON on stdout, text streamed
// to stderr when it is a terminal.
#include "apps/command.h"
#include "common/error.h"
#include "engine/generate.h"
#include "engine/peft_adapter.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string model, adapter, ids;
  int64_t max_new_tokens = 64, top_k = 0;
  double temperature = 0.0, top_p = 1.0;
  uint64_t seed = 0;
  bool no_stop = false;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--model", o->model, "Hugging Face model folder")->required();
  cmd.add_option("--adapter", o->adapter, "PEFT LoRA adapter folder applied to the model");
  cmd.add_option("--ids", o->ids, "prompt token ids, comma-separated")->required();
  cmd.add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate at most")->capture_default_str();
  cmd.add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str();
  cmd.add_option("--top-k", o->top_k, "0 = off")->capture_default_str();
  cmd.add_option("--top-p", o->top_p, "1 = off")->capture_default_str();
  cmd.add_option("--seed", o->seed, "sampling seed")->capture_default_str();
  cmd.add_flag("--ignore-eos", o->no_stop, "do not stop at the model's EOS tokens");
  return [o] {
    auto model = engine::Transformer::load(o->model);
    if (!o->adapter.empty()) engine::load_peft_adapter(o->adapter, model);
    engine::GenerateOptions g;
    g.max_new_tokens = o->max_new_tokens;
    g.sampling = {o->temperature, o->top_k, o->top_p, o->seed};
    if (!o->no_stop) g.stop_ids = model.config().eos_token_ids;
    const auto prompt = parse_id_list("--ids", o->ids);
    const auto results = engine::generate(model, {prompt}, g);
    print_json({{"ids", results[0].tokens}, {"finish_reason", results[0].finish_reason}});
    return 0;
  };
}

const CommandRegistrar reg("generate", "Generate tokens from a prompt", setup);

}  // namespace
}  // namespace synthpert::cli
