// `synthpert generate`: sample a continuation of a prompt given as token ids,
// as text (tokenized with the model folder's tokenizer) or as chat messages
// (rendered with its chat template). JSON on stdout; with a text or chat
// prompt the continuation is decoded to text as well.
#include <algorithm>
#include <cstdio>

#include "apps/command.h"
#include "common/error.h"
#include "engine/generate.h"
#include "engine/peft_adapter.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string model, adapter, ids, prompt, messages, chat_template;
  int64_t max_new_tokens = 64, top_k = 0;
  double temperature = 0.0, top_p = 1.0;
  uint64_t seed = 0;
  bool no_stop = false;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--model", o->model, "Hugging Face model folder")->required();
  cmd.add_option("--adapter", o->adapter, "PEFT LoRA adapter folder applied to the model");
  auto* ids = cmd.add_option("--ids", o->ids, "prompt token ids, comma-separated");
  auto* prompt = cmd.add_option("--prompt", o->prompt, "prompt text (BOS etc. added as the tokenizer says)");
  auto* messages = cmd.add_option("--messages", o->messages, "chat messages JSON file, rendered with the chat template");
  cmd.add_option("--chat-template", o->chat_template, "Jinja template file used instead of the model's chat_template");
  cmd.add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate at most (never past the model's context)")->capture_default_str();
  cmd.add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str();
  cmd.add_option("--top-k", o->top_k, "0 = off")->capture_default_str();
  cmd.add_option("--top-p", o->top_p, "1 = off")->capture_default_str();
  cmd.add_option("--seed", o->seed, "sampling seed")->transform(whole_number())->capture_default_str();
  cmd.add_flag("--ignore-eos", o->no_stop,
               "do not stop at the model's EOS tokens (config.json, generation_config.json and the tokenizer's)");
  return [o, ids, prompt, messages] {
    SP_CHECK_INPUT(ids->count() + prompt->count() + messages->count() == 1,
                   "exactly one of --ids, --prompt or --messages is required");
    std::unique_ptr<tokenizer::Tokenizer> tok;
    std::vector<int64_t> prompt_ids;
    if (ids->count()) {
      prompt_ids = parse_id_list("--ids", o->ids);
    } else {
      tok = tokenizer::Tokenizer::load(o->model);
      if (prompt->count()) {
        prompt_ids = tok->encode(o->prompt, true);
      } else {
        const auto tmpl = tokenizer::ChatTemplate::load_or_override(o->model, o->chat_template);
        prompt_ids = tok->encode(tmpl.render_json(tokenizer::read_messages_file(o->messages), true), false);
      }
      SP_CHECK_INPUT(!prompt_ids.empty(), "the prompt tokenizes to no tokens");
    }
    auto model = engine::Transformer::load(o->model);
    if (!o->adapter.empty()) engine::load_peft_adapter(o->adapter, model);
    engine::GenerateOptions g;
    g.max_new_tokens = o->max_new_tokens;
    g.sampling = {o->temperature, o->top_k, o->top_p, o->seed};
    if (!o->no_stop) {
      // The stops the server and eval use; without a tokenizer (--ids),
      // generation_config.json's and the config's, as transformers' generate.
      const auto& model_eos = model.config().eos_token_ids;
      g.stop_ids = tok ? tok->stop_ids(model_eos)
                       : tokenizer::merge_stop_ids(tokenizer::TokenizerConfig::load(o->model).generation_eos_ids,
                                                   model_eos);
    }
    const int64_t context = model.config().max_position_embeddings;
    if (static_cast<int64_t>(prompt_ids.size()) < context &&
        static_cast<int64_t>(prompt_ids.size()) + g.max_new_tokens > context)
      std::fprintf(stderr, "generate: at most %lld new tokens: the prompt's %zu fill the rest of the model's %lld\n",
                   static_cast<long long>(context - static_cast<int64_t>(prompt_ids.size())), prompt_ids.size(),
                   static_cast<long long>(context));
    const auto results = engine::generate(model, {prompt_ids}, g);
    nlohmann::json out = {{"ids", results[0].tokens}, {"finish_reason", results[0].finish_reason}};
    if (tok) {
      out["prompt_ids"] = prompt_ids;
      out["text"] = tok->decode_generated(results[0].tokens);
    }
    print_json(out);
    return 0;
  };
}

const CommandRegistrar reg("generate", "Generate tokens from a prompt", setup);

}  // namespace
}  // namespace synthpert::cli
