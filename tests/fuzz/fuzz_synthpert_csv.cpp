// libFuzzer target: the CSV reader of SynthPert training files (RFC 4180
// quoting). Refusing the text with an InputError is fine; any other
// exception or a crash is a bug. What it accepts must survive a round trip:
// the rows written back with every field quoted read as the same rows.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "trainer/conversations.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using synthpert::trainer::parse_csv;
  std::vector<std::vector<std::string>> rows;
  try {
    rows = parse_csv(std::string(reinterpret_cast<const char*>(data), size), "fuzz.csv");
  } catch (const synthpert::InputError&) {
    return 0;
  }
  std::string written;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      written += i ? ",\"" : "\"";
      for (char c : row[i]) written += c == '"' ? std::string("\"\"") : std::string(1, c);
      written += '"';
    }
    written += '\n';
  }
  if (parse_csv(written, "fuzz.csv") != rows) std::abort();
  return 0;
}
