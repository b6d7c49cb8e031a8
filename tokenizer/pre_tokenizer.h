// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): split a normalized
// piece of text into the words the model encodes one by one.
// Supported: Sequence, Split (String/Regex pattern, every split behaviour,
// invert), ByteLevel (add_prefix_space, use_regex), Metaspace (replacement,
// prepend_scheme or the older add_prefix_space, split), Digits. Any other type
// is an InputError naming it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthpert::tokenizer {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their split. `at_start`: pieces[0] begins at offset 0
  // of the whole input (Metaspace's prepend_scheme "first" looks at it).
  virtual void split(std::vector<std::string>& pieces, bool at_start) const = 0;
};

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config);

// A Metaspace pre-tokenizer's or decoder's "replacement": one character, as
// tokenizers requires (default U+2581); an empty one would loop forever.
std::string metaspace_replacement(const nlohmann::json& config);

}  // namespace synthpert::tokenizer
