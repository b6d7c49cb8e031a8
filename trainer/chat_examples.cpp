#include "trainer/chat_examples.h"

#include <algorithm>

#include "common/error.h"

namespace synthpert::trainer {

namespace {

bool is_prefix(const std::vector<int64_t>& prefix, const std::vector<int64_t>& full) {
  return prefix.size() <= full.size() && std::equal(prefix.begin(), prefix.end(), full.begin());
}

}  // namespace

SftExample conversation_to_example(const Conversation& c, const RenderFn& render,
                                   const EncodeFn& encode) {
  validate_conversation(c);
  SftExample e;
  e.origin = c.origin;
  e.ids = encode(render(c.messages, false));
  e.loss_mask.assign(e.ids.size(), 0);
  for (size_t i = 0; i < c.messages.size(); ++i) {
    if (c.messages[i].role != "assistant") continue;
    const std::vector<Message> before(c.messages.begin(), c.messages.begin() + i);
    const std::vector<Message> through(c.messages.begin(), c.messages.begin() + i + 1);
    const auto prompt = encode(render(before, true));
    const auto turn = encode(render(through, false));
    SP_CHECK_INPUT(is_prefix(prompt, turn), c.origin, ": assistant message ", i,
                   ": the chat template's rendering up to the generation prompt is not a token "
                   "prefix of the rendering with the reply (cannot locate the assistant tokens)");
    SP_CHECK_INPUT(is_prefix(turn, e.ids), c.origin, ": assistant message ", i,
                   ": the conversation rendered up to this turn is not a token prefix of the whole "
                   "conversation (the template rewrites earlier turns); split it into one example "
                   "per assistant turn");
    SP_CHECK_INPUT(turn.size() > prompt.size(), c.origin, ": assistant message ", i,
                   " renders to no tokens");
    std::fill(e.loss_mask.begin() + prompt.size(), e.loss_mask.begin() + turn.size(), 1);
  }
  return e;
}

}  // namespace synthpert::trainer
