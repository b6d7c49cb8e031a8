#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

bool maps_to_itself(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

std::array<char32_t, 256> make_codepoints() {
  std::array<char32_t, 256> cps{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) cps[b] = maps_to_itself(b) ? static_cast<char32_t>(b) : next++;
  return cps;
}

const std::array<char32_t, 256>& codepoints() {
  static const auto cps = make_codepoints();
  return cps;
}

}  // namespace

const std::array<std::string, 256>& byte_to_char_table() {
  static const auto table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) append_utf8(t[b], codepoints()[b]);
    return t;
  }();
  return table;
}

void byte_level_encode(std::string_view bytes, std::string& out) {
  const auto& t = byte_to_char_table();
  for (unsigned char c : bytes) out += t[c];
}

int char_to_byte(char32_t cp) {
  static const auto inverse = [] {
    std::array<int16_t, 512> inv;
    inv.fill(-1);
    for (int b = 0; b < 256; ++b) inv[codepoints()[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

}  // namespace synthpert::tokenizer
