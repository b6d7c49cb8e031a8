// The parts of tokenizer_config.json and generation_config.json the
// tokenizers and chat templates use. Special tokens may be written as a
// string or as an AddedToken object {"content": ...}.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace synthpert::tokenizer {

struct TokenizerConfig {
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
  std::optional<bool> add_bos_token, add_eos_token;
  bool clean_up_tokenization_spaces = false;  // transformers' current default
  std::string tokenizer_class;                // without a trailing "Fast"
  nlohmann::json chat_template;               // string, list of {name, template}, or null
  nlohmann::json added_tokens_decoder;        // id string -> AddedToken object, or null
  // generation_config.json
  std::vector<int64_t> generation_eos_ids;
  std::optional<int64_t> generation_bos_id;

  // Reads dir/tokenizer_config.json and dir/generation_config.json when present.
  static TokenizerConfig load(const std::string& dir);
  // Parses the contents of a tokenizer_config.json; `where` names it in errors.
  static TokenizerConfig parse(const nlohmann::json& j, const std::string& where);

  // Special-token strings a chat template sees (bos_token, eos_token, ...).
  std::vector<std::pair<std::string, std::string>> template_tokens() const;
};

// A token id written as a JSON object key ("128000"): decimal digits, below
// 2^31; InputError naming `where` otherwise.
int64_t parse_token_id(const std::string& key, const std::string& where);

}  // namespace synthpert::tokenizer
