// Normalizers of tokenizer.json ("normalizer"): the text transformations run
// on each piece of input between added tokens, before pre-tokenization.
// Supported: Sequence, Prepend, Replace (String or Regex), NFC/NFD/NFKC/NFKD
// (ICU), Lowercase, Strip. Any other type is an InputError naming it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace synthpert::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;
};

// Builds the normalizer described by `config`; null config gives nullptr.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config);

}  // namespace synthpert::tokenizer
