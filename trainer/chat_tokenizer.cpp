#include "trainer/chat_tokenizer.h"

#include <memory>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "trainer/chat_examples.h"

namespace synthpert::trainer {

namespace {
// ChatTemplate::load may hand back the template itself or a pointer to it.
template <typename T>
const T& deref(const T& x) { return x; }
template <typename T>
const T& deref(const std::unique_ptr<T>& x) { return *x; }
}  // namespace

std::vector<SftExample> tokenize_conversations(const std::vector<Conversation>& conversations,
                                               const std::string& dir) {
  const auto tok = tokenizer::Tokenizer::load(dir);
  const auto chat = tokenizer::ChatTemplate::load(dir);
  const RenderFn render = [&](const std::vector<Message>& messages, bool add_generation_prompt) {
    std::vector<tokenizer::ChatMessage> msgs;
    for (const auto& m : messages) msgs.push_back({m.role, m.content});
    return deref(chat).render(msgs, add_generation_prompt);
  };
  const EncodeFn encode = [&](const std::string& text) {
    const auto ids = tok->encode(text, /*add_special=*/false);
    return std::vector<int64_t>(ids.begin(), ids.end());
  };
  std::vector<SftExample> out;
  out.reserve(conversations.size());
  for (const auto& c : conversations) out.push_back(conversation_to_example(c, render, encode));
  return out;
}

}  // namespace synthpert::trainer
