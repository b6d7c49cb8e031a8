#include "tokenizer/unicode_case.h"

#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

// UTF-8 -> UTF-16 for ICU; invalid bytes become U+FFFD as everywhere else.
std::u16string to_utf16(std::string_view s) {
  const std::string valid = sanitize_utf8(s);
  std::u16string out(valid.size(), u'\0');  // never more UTF-16 units than UTF-8 bytes
  int32_t n = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &n, valid.data(),
                static_cast<int32_t>(valid.size()), &err);
  SP_CHECK(U_SUCCESS(err), "UTF-8 to UTF-16 failed: ", u_errorName(err));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string to_utf8(const std::u16string& s) {
  std::string out(s.size() * 3, '\0');  // a UTF-16 unit is at most 3 UTF-8 bytes
  int32_t n = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &n, reinterpret_cast<const UChar*>(s.data()),
              static_cast<int32_t>(s.size()), &err);
  SP_CHECK(U_SUCCESS(err), "UTF-16 to UTF-8 failed: ", u_errorName(err));
  out.resize(static_cast<size_t>(n));
  return out;
}

enum class Mapping { kLower, kUpper, kTitle };

// ICU's full mapping of a whole UTF-16 string in the root locale (no Turkish
// or Lithuanian rules, as Python and Rust). Title maps one character here:
// callers pass a single code point, so no word breaking is involved.
std::u16string map_case(const std::u16string& s, Mapping m) {
  if (s.empty()) return s;
  std::u16string out(s.size() * 3 + 4, u'\0');  // full mappings grow a character to at most 3
  for (int round = 0; round < 2; ++round) {
    UErrorCode err = U_ZERO_ERROR;
    const auto* src = reinterpret_cast<const UChar*>(s.data());
    auto* dst = reinterpret_cast<UChar*>(out.data());
    const auto cap = static_cast<int32_t>(out.size()), len = static_cast<int32_t>(s.size());
    int32_t n = m == Mapping::kLower   ? u_strToLower(dst, cap, src, len, "", &err)
                : m == Mapping::kUpper ? u_strToUpper(dst, cap, src, len, "", &err)
                                       : u_strToTitle(dst, cap, src, len, nullptr, "", &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
      out.assign(static_cast<size_t>(n), u'\0');
      continue;
    }
    SP_CHECK(U_SUCCESS(err), "case mapping failed: ", u_errorName(err));
    out.resize(static_cast<size_t>(n));
    return out;
  }
  SP_CHECK(false, "case mapping: the output did not fit twice");
}

std::string map_code_point(char32_t c, Mapping m) {
  UChar unit[2];
  int32_t n = 0;
  U16_APPEND_UNSAFE(unit, n, static_cast<UChar32>(c));
  return to_utf8(map_case(std::u16string(reinterpret_cast<const char16_t*>(unit), static_cast<size_t>(n)), m));
}

bool is_cased(char32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_CASED); }
bool is_titlecase(char32_t c) { return u_charType(static_cast<UChar32>(c)) == U_TITLECASE_LETTER; }

bool is_case_ignorable(char32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_CASE_IGNORABLE); }

// Python's final-sigma rule for a capital sigma at u[i] being lowered: a
// cased character before it and none after it (case-ignorable ones skipped)
// make it the final form.
bool is_final_sigma(const std::u32string& u, size_t i) {
  size_t j = i;
  while (j > 0 && is_case_ignorable(u[j - 1])) --j;
  if (j == 0 || !is_cased(u[j - 1])) return false;
  size_t k = i + 1;
  while (k < u.size() && is_case_ignorable(u[k])) ++k;
  return k == u.size() || !is_cased(u[k]);
}

// Python's rule: characters after the first of a word are lowered, where a
// word starts at any cased character that does not follow a cased one. A
// lowered character is mapped alone, except a capital sigma, which looks at
// its neighbours in the whole string as Python's lower does.
std::string title_like(std::string_view s, bool every_word) {
  std::string out;
  bool previous_cased = false, first = true;
  const std::u32string u = utf8_to_u32(sanitize_utf8(s));
  for (size_t i = 0; i < u.size(); ++i) {
    const char32_t c = u[i];
    const bool title = every_word ? !previous_cased : first;
    if (!title && c == 0x3A3) out += is_final_sigma(u, i) ? "\u03C2" : "\u03C3";
    else out += map_code_point(c, title ? Mapping::kTitle : Mapping::kLower);
    previous_cased = is_cased(c);
    first = false;
  }
  return out;
}

// Python's islower (want_lower) / isupper: a character of the wanted case,
// and none of the other case or of titlecase.
bool all_cased_are(std::string_view s, bool want_lower) {
  bool seen = false;
  for (char32_t c : utf8_to_u32(sanitize_utf8(s))) {
    const auto u = static_cast<UChar32>(c);
    const bool lower = u_isULowercase(u), upper = u_isUUppercase(u);
    if ((want_lower ? upper : lower) || is_titlecase(c)) return false;
    seen = seen || (want_lower ? lower : upper);
  }
  return seen;
}

}  // namespace

std::string unicode_upper(std::string_view s) { return to_utf8(map_case(to_utf16(s), Mapping::kUpper)); }
std::string unicode_lower(std::string_view s) { return to_utf8(map_case(to_utf16(s), Mapping::kLower)); }
std::string unicode_title(std::string_view s) { return title_like(s, true); }
std::string unicode_capitalize(std::string_view s) { return title_like(s, false); }

bool unicode_is_lower(std::string_view s) { return all_cased_are(s, true); }
bool unicode_is_upper(std::string_view s) { return all_cased_are(s, false); }

std::string lowercase_each_code_point(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : utf8_to_u32(s)) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c));
      continue;
    }
    out += map_code_point(c, Mapping::kLower);
  }
  return out;
}

}  // namespace synthpert::tokenizer
