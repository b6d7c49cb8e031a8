// A compiled PCRE2 regex (UTF + Unicode properties, JIT when available) for
// the pre-tokenizer and normalizer patterns of tokenizer.json.
//
// Hugging Face tokenizers compile these patterns with Oniguruma. The syntax
// they use (\p{L}, (?i:...), lookahead) means the same in PCRE2 except \s and
// \S: PCRE2's Unicode \s also matches U+180E, so both are rewritten to the
// explicit White_Space set Oniguruma uses.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace synthpert::tokenizer {

class Regex {
 public:
  // `where` names the pattern's origin for error messages.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls fn(start, end) for each non-empty, non-overlapping match, left to
  // right. `text` must be valid UTF-8.
  void for_each_match(std::string_view text, const std::function<void(size_t, size_t)>& fn) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

// Rewrites \s and \S (outside and inside character classes) to the White_Space set.
std::string rewrite_whitespace_classes(const std::string& pattern);

// Escapes a literal string for use inside a pattern.
std::string regex_escape(std::string_view literal);

}  // namespace synthpert::tokenizer
