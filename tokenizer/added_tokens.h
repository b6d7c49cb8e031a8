// Added tokens (tokenizer.json "added_tokens"): strings matched in the input
// before normalization and pre-tokenization and mapped straight to their id.
// Matching follows Hugging Face: leftmost-longest; `single_word` rejects a
// match touching a word character; `lstrip`/`rstrip` swallow the whitespace
// beside it; tokens with `normalized: false` (all special tokens by default)
// are matched on the raw text, the others on the normalized text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace synthpert::tokenizer {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// A piece of input: either a matched added token (id >= 0) or text to encode.
struct Section {
  std::string text;
  int64_t id = -1;
  size_t offset = 0;  // byte offset of the text in the string that was split
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<const AddedToken*> tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits `text` into added-token matches and the text between them.
  std::vector<Section> split(std::string_view text) const;

 private:
  std::vector<const AddedToken*> tokens_;
  // Tokens by first byte, longest first.
  std::vector<const AddedToken*> by_first_byte_[256];
};

}  // namespace synthpert::tokenizer
