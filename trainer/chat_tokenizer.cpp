#include "trainer/chat_tokenizer.h"

#include "common/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "trainer/chat_examples.h"

namespace synthpert::trainer {

std::vector<SftExample> tokenize_conversations(const std::vector<Conversation>& conversations,
                                               const std::string& dir) {
  const auto tok = tokenizer::Tokenizer::load(dir);
  // train has no --chat-template: the template travels with the tokenizer
  // folder, so the trained model is served with the one it learned.
  SP_CHECK_INPUT(tokenizer::ChatTemplate::present(dir), dir,
                 ": no chat template (tokenizer_config.json \"chat_template\", chat_template.jinja or "
                 "chat_template.json); pass --tokenizer DIR, a folder with the tokenizer and a chat template");
  const auto chat = tokenizer::ChatTemplate::load(dir);
  const RenderFn render = [&](const std::vector<Message>& messages, bool add_generation_prompt) {
    std::vector<tokenizer::ChatMessage> msgs;
    msgs.reserve(messages.size());
    for (const auto& m : messages) msgs.push_back({m.role, m.content});
    return chat.render(msgs, add_generation_prompt);
  };
  const EncodeFn encode = [&](const std::string& text) { return tok->encode(text, /*add_special=*/false); };
  std::vector<SftExample> out;
  out.reserve(conversations.size());
  for (const auto& c : conversations) out.push_back(conversation_to_example(c, render, encode));
  return out;
}

}  // namespace synthpert::trainer
