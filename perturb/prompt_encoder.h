// Turns PerturbQA rows into token ids for a given model: the prompt (through the
// model's chat template when it has one) and the three answers as continuations.
//
// Answers are tokenized in context: encode(prompt + answer) must start with
// encode(prompt), and the rest are the answer's tokens. This is what the model
// sees when it writes the answer itself, whatever the tokenizer does at word
// boundaries; a template whose prompt and answer merge across the boundary is
// rejected with an error naming it. Through a chat template the answer is the
// assistant's turn as the template writes it (the conversation with the
// answer as its last message, rendered without the generation prompt): the
// tokens `train` targets for that reply, the end of turn included, so a
// template that trims the reply (Llama 3's) scores what the model learned to
// write, not the template's raw [answer] text. A template whose assistant
// turn does not continue its own generation prompt (train refuses it) gets
// the [answer] text after the prompt as it is.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "perturb/data.h"
#include "perturb/prompt.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace synthpert::perturb {

enum class ChatMode { kAuto, kOn, kOff };  // auto: use the model's chat template if it has one

// A question as scoring takes it: its prompt's token ids and the three
// answers' (label_index order) as continuations of that prompt.
struct AnswerIds {
  std::vector<int64_t> prompt;
  std::array<std::vector<int64_t>, 3> answers;
};

class PromptEncoder {
 public:
  PromptEncoder(const std::string& tokenizer_dir, PromptTemplate tmpl, ChatMode mode = ChatMode::kAuto,
                const std::string& chat_template_file = "");

  std::string prompt_text(const Row& row) const;
  std::vector<int64_t> prompt_ids(const Row& row) const;
  // Token ids of each label's answer after the prompt, indexed by label_index.
  std::array<std::vector<int64_t>, 3> answer_ids(const Row& row, const std::vector<int64_t>& prompt_ids) const;
  // Both at once.
  AnswerIds question_ids(const Row& row) const;

  // Renders every row's {cell_id} and {cell_type} as `name` (empty: each row's
  // own). For students trained without cell identity, so that a cell line
  // never seen in training is asked about the way the training rows were,
  // instead of through an untrained token.
  void set_prompt_cell(std::string name) { prompt_cell_ = std::move(name); }

  bool uses_chat_template() const { return chat_.has_value(); }
  const tokenizer::Tokenizer& tokenizer() const { return *tok_; }
  const PromptTemplate& prompt_template() const { return tmpl_; }

 private:
  // The row's system and user turns, with prompt_cell_ applied.
  std::vector<std::pair<std::string, std::string>> messages(const Row& row) const;

  std::unique_ptr<tokenizer::Tokenizer> tok_;
  std::optional<tokenizer::ChatTemplate> chat_;
  PromptTemplate tmpl_;
  std::string prompt_cell_;
};

}  // namespace synthpert::perturb
