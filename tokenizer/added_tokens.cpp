#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include <unicode/uchar.h>

#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

// Rust regex \w: alphabetic, marks, decimal digits, connector punctuation, join controls.
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  const auto cp = static_cast<UChar32>(c);
  const int8_t cat = u_charType(cp);
  return u_hasBinaryProperty(cp, UCHAR_ALPHABETIC) || cat == U_NON_SPACING_MARK || cat == U_ENCLOSING_MARK ||
         cat == U_COMBINING_SPACING_MARK || cat == U_DECIMAL_DIGIT_NUMBER || cat == U_CONNECTOR_PUNCTUATION ||
         c == 0x200C || c == 0x200D;
}

// Code point ending just before byte `pos` (text is valid UTF-8).
char32_t char_before(std::string_view s, size_t pos) {
  size_t b = pos - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  char32_t cp = 0;
  utf8_sequence(s, b, &cp);
  return cp;
}

char32_t char_at(std::string_view s, size_t pos) {
  char32_t cp = 0;
  utf8_sequence(s, pos, &cp);
  return cp;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<const AddedToken*> tokens) : tokens_(std::move(tokens)) {
  for (const AddedToken* t : tokens_)
    if (!t->content.empty()) by_first_byte_[static_cast<unsigned char>(t->content[0])].push_back(t);
  for (auto& bucket : by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
}

std::vector<Section> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Section> out;
  size_t done = 0;  // text before `done` is already emitted
  size_t pos = 0;
  while (pos < text.size()) {
    const AddedToken* hit = nullptr;
    for (const AddedToken* t : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (t->content.size() <= text.size() - pos &&
          std::memcmp(text.data() + pos, t->content.data(), t->content.size()) == 0) {
        hit = t;  // longest first
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->content.size();
    if (hit->single_word) {
      const bool word_before = start > 0 && is_word_char(char_before(text, start));
      const bool word_after = stop < text.size() && is_word_char(char_at(text, stop));
      if (word_before || word_after) {
        // Rejected: matching resumes after this match, as the Aho-Corasick
        // iterator Hugging Face uses does.
        pos = stop;
        continue;
      }
    }
    if (hit->lstrip) {
      while (start > done && is_unicode_whitespace(char_before(text, start))) {
        size_t b = start - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        start = b;
      }
    }
    if (hit->rstrip) {
      while (stop < text.size() && is_unicode_whitespace(char_at(text, stop)))
        stop += utf8_char_len(static_cast<unsigned char>(text[stop]));
    }
    if (start > done) out.push_back({std::string(text.substr(done, start - done)), -1, done});
    out.push_back({std::string(text.substr(start, stop - start)), hit->id, start});
    done = pos = stop;
  }
  if (done < text.size()) out.push_back({std::string(text.substr(done)), -1, done});
  return out;
}

}  // namespace synthpert::tokenizer
