// Text <-> token ids for the models we fine-tune and serve.
//
// Tokenizer::load(dir) picks the implementation from what the folder holds:
// tokenizer.json (Hugging Face "fast" format: byte-level or byte-fallback BPE,
// see hf_tokenizer.h) is preferred, else tokenizer.model (sentencepiece, see
// sp_tokenizer.h). tokenizer_config.json and generation_config.json supply
// BOS/EOS, add_bos_token/add_eos_token and clean_up_tokenization_spaces.
// Input bytes that are not valid UTF-8 are replaced by U+FFFD (utf8.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace synthpert::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Auto-detects tokenizer.json or tokenizer.model in `dir`, reads tokenizer_config.json if present.
  static std::unique_ptr<Tokenizer> load(const std::string& dir);

  // add_special: BOS etc. as the model's config/post-processor says. Special
  // tokens written in the text are recognised.
  virtual std::vector<int64_t> encode(std::string_view text, bool add_special = true) const = 0;
  // Throws InputError for an id the tokenizer has no token for. Applies
  // transformers' clean_up_tokenization when the config asks, as its decode.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = false) const {
    return finish_decode(decode_text(ids, skip_special));
  }
  // The text of ids a model generated, special tokens skipped. Ids with no
  // token are dropped, as Hugging Face's tokenizers do when decoding: a model
  // whose embedding is padded past its tokenizer (Qwen2's, for one) can
  // sample them, and they have no text. Never cleaned up (as vLLM's
  // detokenizer): the cleanup rewrites text across token boundaries
  // (" n" + "'t" -> "n't"), so text already streamed would have to change,
  // and every path that shows generated text (generate, eval, serve) must
  // show the same.
  std::string decode_generated(const std::vector<int64_t>& ids) const;
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  // The token string of an id (before decoding), if the id exists.
  virtual std::optional<std::string> id_to_token(int64_t id) const = 0;
  virtual bool is_special(int64_t id) const = 0;
  // "bpe" or "sentencepiece".
  virtual std::string kind() const = 0;

  std::optional<int64_t> bos_id() const { return bos_id_; }   // from tokenizer_config.json / model
  std::vector<int64_t> eos_ids() const { return eos_ids_; }   // eos_token (+ generation_config.json eos_token_id list)
  // Where generation stops: eos_ids() and the model config's eos_token_id(s),
  // each once. (Llama 3 Instruct names <|end_of_text|> in config.json but
  // ends its turns with <|eot_id|>, which only the tokenizer side names.)
  std::vector<int64_t> stop_ids(const std::vector<int64_t>& model_eos_ids) const;

  // Whether decode() applies transformers' clean_up_tokenization (" ." -> "."
  // etc.); set from tokenizer_config.json, as transformers' decode does.
  bool clean_up_tokenization_spaces() const { return clean_up_; }
  void set_clean_up_tokenization_spaces(bool on) { clean_up_ = on; }

 protected:
  // The decoder's text of ids, before clean_up_tokenization; InputError for
  // an id without a token.
  virtual std::string decode_text(const std::vector<int64_t>& ids, bool skip_special) const = 0;
  // Applies clean_up_tokenization when enabled.
  std::string finish_decode(std::string text) const;

  std::optional<int64_t> bos_id_;
  std::vector<int64_t> eos_ids_;
  bool clean_up_ = false;
};

// transformers' clean_up_tokenization: removes the space before . ? ! , and
// before English contractions.
std::string clean_up_tokenization(std::string text);

// `ids` followed by those of `more` it lacks (the union of stop-id lists, in
// order).
std::vector<int64_t> merge_stop_ids(std::vector<int64_t> ids, const std::vector<int64_t>& more);

}  // namespace synthpert::tokenizer
