// Chat conversations read from the two text inputs of `synthpert train`:
//   traces JSONL: {"messages":[{"role","content"},...], ...metadata}
//   SynthPert CSV: columns user_prompt, assistant_response (+ optional
//   cell_type, pert, gene, true_answer, critic_evaluation), turned into
//   [system (if given), user, assistant].
// Tokenizer-free; trainer/chat_examples.h turns them into token examples.
#pragma once

#include <string>
#include <vector>

namespace synthpert::trainer {

struct Message {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

struct Conversation {
  std::vector<Message> messages;
  std::string origin;  // "FILE:LINE" or "FILE:row N"
};

// Checks roles, non-empty assistant turns and at least one assistant turn.
void validate_conversation(const Conversation& c);

std::vector<Conversation> read_traces_jsonl(const std::string& path);

// `system_prompt` empty: no system message.
std::vector<Conversation> read_synthpert_csv(const std::string& path,
                                             const std::string& system_prompt);

// RFC 4180 CSV (quoted fields may hold commas, newlines and doubled quotes).
// Returns rows of fields, the header first. `path` names errors.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& path);

}  // namespace synthpert::trainer
