// The GPT-2 byte-to-character table used by ByteLevel pre-tokenizers and
// decoders: every byte maps to one printable code point, so byte-level BPE
// vocabularies can be stored as text. Printable Latin-1 bytes map to
// themselves; the other 68 bytes map to U+0100.. in byte order.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace synthpert::tokenizer {

// UTF-8 spelling of the character each byte maps to.
const std::array<std::string, 256>& byte_to_char_table();

// Appends the byte-level spelling of `bytes` to `out`.
void byte_level_encode(std::string_view bytes, std::string& out);

// The byte a code point stands for, or -1 if it is not in the table.
int char_to_byte(char32_t cp);

}  // namespace synthpert::tokenizer
