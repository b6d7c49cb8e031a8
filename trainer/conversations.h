// Chat conversations read from the two text inputs of `synthpert train`:
//   traces JSONL: {"messages":[{"role","content"},...], ...metadata}
//   SynthPert CSV: columns user_prompt, assistant_response (+ optional
//   cell_type, pert, gene, true_answer, critic_evaluation), turned into
//   [user, assistant].
// A system message is added afterwards to conversations without one
// (add_system_messages). Tokenizer-free; trainer/chat_examples.h turns them
// into token examples.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
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
  // The example's cell_type, pert and gene where the input has them (trace
  // keys, CSV columns); a prompt template's system text may use them. Also
  // "judge": the trace's grade (the "judge" key of a trace, the
  // critic_evaluation column of a SynthPert CSV), for `train --accept`;
  // empty when the trace was not graded. And "prompt_template": the template
  // a `synthpert data` row was written with (its system message, if none is
  // chosen, trainer/system_prompt.h).
  std::map<std::string, std::string> fields;
};

// The system message for a conversation that has none ("" = leave it without).
using SystemPromptFn = std::function<std::string(const Conversation&)>;

// Puts `system_prompt(c)` first in every conversation without a system message.
void add_system_messages(std::vector<Conversation>& conversations, const SystemPromptFn& system_prompt);

// Checks roles, non-empty assistant turns and at least one assistant turn.
void validate_conversation(const Conversation& c);

// A line without "messages" that carries a "reason" is a record of a
// REJECTED file of `synthpert traces` that holds no trace (a teacher reply
// that failed the checks, a failed request): it is skipped, and counted in
// `*without_trace` when given. A trace whose "judge" is null (the judge did
// not grade it) gets an empty "judge" field.
std::vector<Conversation> read_traces_jsonl(const std::string& path, int64_t* without_trace = nullptr);

std::vector<Conversation> read_synthpert_csv(const std::string& path);

// RFC 4180 CSV (quoted fields may hold commas, newlines and doubled quotes).
// Returns rows of fields, the header first. `path` names errors.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& path);

}  // namespace synthpert::trainer
