// A sentencepiece tokenizer.model (libsentencepiece through sp_model.h), as transformers'
// LlamaTokenizer (legacy mode) uses it: control and added tokens written in
// the text are split out first and each piece between them is encoded by
// sentencepiece on its own; add_special puts BOS in front
// (add_bos_token, default true) and EOS at the end (add_eos_token, default false).
#pragma once

#include <memory>
#include <unordered_map>

#include "tokenizer/added_tokens.h"
#include "tokenizer/sp_model.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace synthpert::tokenizer {

class SpTokenizer : public Tokenizer {
 public:
  SpTokenizer(const std::string& model_path, const TokenizerConfig& config);
  ~SpTokenizer() override;

  std::vector<int64_t> encode(std::string_view text, bool add_special = true) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(int64_t id) const override;
  bool is_special(int64_t id) const override;
  std::string kind() const override { return "sentencepiece"; }

 protected:
  std::string decode_text(const std::vector<int64_t>& ids, bool skip_special) const override;

 private:
  std::unique_ptr<SpModel> sp_;
  std::vector<AddedToken> specials_;  // control pieces, unk, config added tokens
  std::unordered_map<int64_t, size_t> special_by_id_;
  AddedTokenMatcher matcher_;
  bool add_bos_ = true, add_eos_ = false;
};

}  // namespace synthpert::tokenizer
