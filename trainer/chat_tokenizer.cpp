#include "trainer/chat_tokenizer.h"

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "trainer/chat_examples.h"

namespace synthpert::trainer {

std::vector<SftExample> tokenize_conversations(const std::vector<Conversation>& conversations,
                                               const std::string& dir) {
  const auto tok = tokenizer::Tokenizer::load(dir);
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
