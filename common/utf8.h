// UTF-8 validation, shared by the tokenizers (which repair invalid text, see
// tokenizer/utf8.h) and the readers of user text files that must refuse it
// (prompt and chat templates).
#pragma once

#include <cstddef>
#include <string_view>

namespace synthpert {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 if the
// bytes there are not a valid sequence (overlong forms, surrogates and code
// points above U+10FFFF included). Writes the code point when valid.
size_t utf8_sequence(std::string_view s, size_t i, char32_t* cp = nullptr);

bool is_valid_utf8(std::string_view s);

}  // namespace synthpert
