// UTF-8 helpers shared by the tokenizers and the template interpreter.
//
// Tokenizers accept arbitrary bytes. Invalid UTF-8 is replaced before anything
// else looks at the text: each maximal invalid subpart becomes one U+FFFD, the
// rule of Unicode §3.9 that WHATWG TextDecoder, Python's bytes.decode(errors=
// "replace") and Rust's String::from_utf8_lossy all follow, so we tokenize what
// those would hand to a Hugging Face tokenizer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/utf8.h"  // utf8_sequence, is_valid_utf8

namespace synthpert::tokenizer {

// Byte length of the character that starts with lead byte `c` (1 for stray bytes).
inline size_t utf8_char_len(unsigned char c) {
  return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
}

// Returns `s` with every maximal invalid subpart replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);

void append_utf8(std::string& out, char32_t cp);

// Decodes valid UTF-8 into code points (callers sanitize first).
std::u32string utf8_to_u32(std::string_view s);
std::string u32_to_utf8(std::u32string_view s);

// Unicode White_Space property (what Rust's char::is_whitespace and the
// Oniguruma/Rust-regex \s used by Hugging Face tokenizers test).
bool is_unicode_whitespace(char32_t cp);

}  // namespace synthpert::tokenizer
