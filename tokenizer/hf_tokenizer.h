// A tokenizer.json tokenizer (Hugging Face "fast" format) with a BPE model:
// added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor, and
// back through the decoder. See normalizer.h, pre_tokenizer.h, bpe_model.h,
// decoder.h and added_tokens.h for what each stage supports.
#pragma once

#include <memory>
#include <unordered_map>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace synthpert::tokenizer {

class HfTokenizer : public Tokenizer {
 public:
  // `tokenizer_json` is the parsed file, `where` its path for error messages.
  HfTokenizer(const nlohmann::json& tokenizer_json, const TokenizerConfig& config, const std::string& where);

  std::vector<int64_t> encode(std::string_view text, bool add_special = true) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(int64_t id) const override;
  bool is_special(int64_t id) const override;
  std::string kind() const override { return "bpe"; }

 protected:
  std::string decode_text(const std::vector<int64_t>& ids, bool skip_special) const override;

 private:
  void encode_text(const std::string& text, bool at_start, std::vector<int64_t>& out) const;
  void read_post_processor(const nlohmann::json& pp, const std::string& where);

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  // The normalized added tokens with their content normalized too, as the
  // normalized text is what they are matched in (tokenizers does the same).
  std::vector<AddedToken> normalized_forms_;
  std::unordered_map<std::string, size_t> added_by_content_;
  std::unordered_map<int64_t, size_t> added_by_id_;
  AddedTokenMatcher raw_matcher_, normalized_matcher_;
  // What add_special puts around the ids (TemplateProcessing's single template).
  std::vector<int64_t> prefix_, suffix_;
};

}  // namespace synthpert::tokenizer
