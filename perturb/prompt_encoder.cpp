#include "perturb/prompt_encoder.h"

#include "common/error.h"
#include "perturb/data_jsonl.h"

namespace synthpert::perturb {

PromptEncoder::PromptEncoder(const std::string& dir, PromptTemplate tmpl, ChatMode mode,
                             const std::string& chat_template_file)
    : tok_(tokenizer::Tokenizer::load(dir)), tmpl_(std::move(tmpl)) {
  if (!chat_template_file.empty()) {
    SP_CHECK_INPUT(mode != ChatMode::kOff, "--chat-template and --no-chat-template contradict each other");
    chat_ = tokenizer::ChatTemplate::load_or_override(dir, chat_template_file);
  } else if (mode == ChatMode::kOn || (mode == ChatMode::kAuto && tokenizer::ChatTemplate::present(dir))) {
    chat_ = tokenizer::ChatTemplate::load(dir);
  }
}

std::vector<std::pair<std::string, std::string>> PromptEncoder::messages(const Row& row) const {
  if (prompt_cell_.empty()) return prompt_messages(row, tmpl_);
  Row shown = row;
  shown.cell_type = prompt_cell_;
  return prompt_messages(shown, tmpl_);
}

namespace {

std::vector<tokenizer::ChatMessage> chat_messages(const std::vector<std::pair<std::string, std::string>>& messages) {
  std::vector<tokenizer::ChatMessage> m;
  for (const auto& [role, content] : messages) m.push_back({role, content});
  return m;
}

}  // namespace

std::string PromptEncoder::prompt_text(const Row& row) const {
  if (chat_) return chat_->render(chat_messages(messages(row)), /*add_generation_prompt=*/true);
  // Without a chat template the system text, if any, simply precedes the question.
  std::string text;
  for (const auto& [role, content] : messages(row)) text += (text.empty() ? "" : "\n\n") + content;
  return text;
}

// A chat template writes BOS and other special tokens into the text itself, so
// the text is encoded without adding them again (as Hugging Face does).
std::vector<int64_t> PromptEncoder::prompt_ids(const Row& row) const {
  return tok_->encode(prompt_text(row), /*add_special=*/!chat_);
}

AnswerIds PromptEncoder::question_ids(const Row& row) const {
  AnswerIds q;
  q.prompt = prompt_ids(row);
  q.answers = answer_ids(row, q.prompt);
  return q;
}

std::array<std::vector<int64_t>, 3> PromptEncoder::answer_ids(const Row& row,
                                                              const std::vector<int64_t>& prompt) const {
  const std::string text = prompt_text(row);
  const auto turns = messages(row);
  auto continues = [&](const std::vector<int64_t>& full) {
    return full.size() > prompt.size() && std::equal(prompt.begin(), prompt.end(), full.begin());
  };
  std::array<std::vector<int64_t>, 3> out;
  for (Label l : kAllLabels) {
    const std::string answer = tmpl_.render_answer(l);
    std::vector<int64_t> full;
    if (chat_) {
      auto m = chat_messages(turns);
      m.push_back({"assistant", answer});
      full = tok_->encode(chat_->render(m, /*add_generation_prompt=*/false), /*add_special=*/false);
      // A template whose assistant turn does not continue its own generation
      // prompt (which train refuses) has no trained form of the reply: the
      // answer text follows the prompt as it is.
      if (!continues(full)) full = tok_->encode(text + answer, /*add_special=*/false);
    } else {
      full = tok_->encode(text + answer, /*add_special=*/true);
    }
    SP_CHECK_INPUT(continues(full), "prompt template ", tmpl_.name, ": the answer '", answer,
                   "' merges with the end of the prompt when tokenized (row ", row.cell_type, " ", row.pert, " ",
                   row.gene, "); end the [user] section or start the [answer] section with a separator");
    out[label_index(l)].assign(full.begin() + static_cast<std::ptrdiff_t>(prompt.size()), full.end());
  }
  return out;
}

}  // namespace synthpert::perturb
