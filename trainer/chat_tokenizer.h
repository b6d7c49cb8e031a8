// Binds trainer/chat_examples.h to the model's tokenizer and chat template
// (tokenizer/).
#pragma once

#include <string>
#include <vector>

#include "trainer/conversations.h"
#include "trainer/sft_example.h"

namespace synthpert::trainer {

// Tokenizes conversations with the tokenizer and chat template in `dir`
// (tokenizer.json or tokenizer.model, tokenizer_config.json). The rendered
// text carries the template's own special tokens (BOS included), so it is
// encoded without adding more.
std::vector<SftExample> tokenize_conversations(const std::vector<Conversation>& conversations,
                                               const std::string& dir);

}  // namespace synthpert::trainer
