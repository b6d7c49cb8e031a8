// A compiled PCRE2 regex (UTF + Unicode properties, JIT when available) for
// the pre-tokenizer and normalizer patterns of tokenizer.json.
//
// Hugging Face tokenizers compile these patterns with Oniguruma's default
// syntax. The syntax they use (\p{L}, (?i:...), lookahead, ?+ *+ ++) means
// the same in PCRE2 except for what oniguruma_to_pcre2 rewrites and the
// anchors "^"/"$", which are line anchors in Oniguruma (compiled here in
// PCRE2's multiline mode).
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

// Rewrites an Oniguruma pattern to a PCRE2 one that matches the same:
// - \s and \S (outside and inside character classes) become Oniguruma's
//   White_Space set (PCRE2's Unicode \s also matches U+180E);
// - "X{n,m}+" becomes "(?:X{n,m})+" and "X{n}?" becomes "(?:X{n})?"
//   (Oniguruma has no possessive interval or lazy fixed interval; PCRE2 has);
// - "{,m}" becomes "{0,m}".
std::string oniguruma_to_pcre2(const std::string& pattern);

// Escapes a literal string for use inside a pattern.
std::string regex_escape(std::string_view literal);

}  // namespace synthpert::tokenizer
