// Unicode case mappings with Python's str semantics, for the chat-template
// filters (`upper`, `lower`, `title`, `capitalize` and the `upper`/`lower`
// tests) and the tokenizer.json `Lowercase` normalizer. ICU's full mappings
// (SpecialCasing included: "ß".upper() is "SS", "İ".lower() is "i̇") are
// what CPython and Rust use too; only the context each applies differs, and
// each function below says which it follows.
#pragma once

#include <string>
#include <string_view>

namespace synthpert::tokenizer {

// Python str.upper() / str.lower(): full mappings over the whole string;
// lower() turns a word-final capital sigma into ς as CPython does.
std::string unicode_upper(std::string_view s);
std::string unicode_lower(std::string_view s);

// Python str.title(): a cased character that follows an uncased one (or
// starts the string) takes its full titlecase mapping, every other character
// its full lowercase one. str.capitalize() (Python >= 3.8): the first
// character titlecased, the rest lowercased. (The lowering here maps each
// character alone, so a capital sigma becomes σ even where CPython, looking
// at its neighbours, writes the final ς.)
std::string unicode_title(std::string_view s);
std::string unicode_capitalize(std::string_view s);

// Python str.islower() / str.isupper(): at least one cased character, and
// none that is uppercase or titlecase (islower) / lowercase or titlecase
// (isupper).
bool unicode_is_lower(std::string_view s);
bool unicode_is_upper(std::string_view s);

// Each code point replaced by its full lowercase mapping, with no context
// (Rust's char::to_lowercase, which the tokenizers library's Lowercase
// normalizer applies one character at a time: "İ" becomes "i̇", and a
// capital sigma is always σ).
std::string lowercase_each_code_point(std::string_view s);

}  // namespace synthpert::tokenizer
