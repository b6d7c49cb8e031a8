// Conversation -> SftExample with the loss on the assistant's tokens only.
//
// For every assistant turn i the conversation is rendered twice through the
// model's chat template: messages[0, i) with the generation prompt, and
// messages[0, i]. The tokens the second rendering adds are the assistant's
// (its text and its end-of-turn token). This needs the prefix property: each
// partial rendering's tokens must be a prefix of the next and of the whole
// conversation's. Templates that rewrite earlier turns (e.g. dropping past
// reasoning) or tokenizations that merge across the boundary break it, and
// that is reported as an error naming the example.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "trainer/conversations.h"
#include "trainer/sft_example.h"

namespace synthpert::trainer {

using RenderFn = std::function<std::string(const std::vector<Message>&, bool add_generation_prompt)>;
using EncodeFn = std::function<std::vector<int64_t>(const std::string&)>;

SftExample conversation_to_example(const Conversation& c, const RenderFn& render,
                                   const EncodeFn& encode);

}  // namespace synthpert::trainer
