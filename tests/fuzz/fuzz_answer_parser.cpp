// libFuzzer target: the reader of a model's free-text answer. It must take
// any text without failing, and ignore letter case as documented
// (perturb/answer_parser.h): the same reply in capitals reads the same.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "perturb/answer_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using synthpert::perturb::parse_answer;
  if (size == 0) return 0;
  const bool cut_off = data[0] & 1;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto label = parse_answer(text, cut_off);
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (parse_answer(text, cut_off) != label) std::abort();
  return 0;
}
