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

// Rewrites an Oniguruma pattern to a PCRE2 one that matches the same
// (tests/tokenizer/test_regex_oracle.cpp checks this against Oniguruma):
// - the sets the engines define apart become Oniguruma's: \s \S (White_Space:
//   PCRE2's \s also has U+180E), \w \W \b \B (Alphabetic, marks, decimal
//   digits, connectors), \h \H (hex digits, not horizontal space), the POSIX
//   brackets [:alpha:] [:punct:] ... and \p{Alpha}, \p{Word}, ...; a class
//   holding a complement (as "[^\S\n]") becomes an alternation or lookahead;
// - \v is a vertical tab and \uHHHH a code point;
// - "X{n,m}+" becomes "(?:X{n,m})+" and "X{n}?" becomes "(?:X{n})?"
//   (Oniguruma has no possessive interval or lazy fixed interval; PCRE2 has);
// - "{,m}" becomes "{0,m}".
// Nested classes and class intersection ("&&") throw InputError, as does a
// range starting at a set (which Oniguruma refuses too).
std::string oniguruma_to_pcre2(const std::string& pattern);

// Escapes a literal string for use inside a pattern.
std::string regex_escape(std::string_view literal);

}  // namespace synthpert::tokenizer
