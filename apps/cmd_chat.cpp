// `synthpert chat`: render a model folder's chat template over messages and tokenize the result.
#include "apps/command.h"
#include "common/error.h"
#include "common/fs.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace synthpert::cli {
namespace {

struct Opts {
  std::string tokenizer, messages, chat_template;
  bool add_generation_prompt = false;
};

RunFn setup(CLI::App& cmd) {
  auto o = std::make_shared<Opts>();
  cmd.add_option("--tokenizer", o->tokenizer, "model folder (tokenizer files + tokenizer_config.json)")->required();
  cmd.add_option("--messages", o->messages, "JSON file: a list of {role, content} (or {\"messages\": [...]})")->required();
  cmd.add_flag("--add-generation-prompt", o->add_generation_prompt, "end with the assistant turn's header");
  cmd.add_option("--chat-template", o->chat_template, "Jinja template file used instead of the folder's chat_template");
  return [o] {
    const auto tok = tokenizer::Tokenizer::load(o->tokenizer);
    tokenizer::ChatTemplate tmpl = tokenizer::ChatTemplate::load_or_override(o->tokenizer, o->chat_template);
    const std::string text = tmpl.render_json(tokenizer::read_messages_file(o->messages), o->add_generation_prompt);
    // The template writes BOS itself, so no special tokens are added (as transformers does).
    print_json({{"text", text}, {"ids", tok->encode(text, false)}});
    return 0;
  };
}

const CommandRegistrar reg("chat", "Render the chat template over messages and tokenize it", setup);

}  // namespace
}  // namespace synthpert::cli
