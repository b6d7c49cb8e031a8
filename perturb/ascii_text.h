// Byte-wise text helpers for reading model replies: ASCII case folding (other
// bytes, UTF-8 included, are kept, so offsets into the folded text are
// offsets into the original) and trimming of ASCII whitespace.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace synthpert::perturb {

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string_view trim_space(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace synthpert::perturb
