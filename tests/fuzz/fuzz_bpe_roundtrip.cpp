// libFuzzer target: a real byte-level BPE tokenizer (the tokenizer.json named
// by $SYNTHPERT_FUZZ_TOKENIZER, scripts/fuzz.sh passes Llama-3.1's) must
// encode any bytes without failing, and give back any valid UTF-8 text
// exactly: byte-level BPE loses nothing, and with clean-up off and special
// tokens kept, decode(encode(text)) is the text itself.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/json_input.h"
#include "common/utf8.h"
#include "tokenizer/hf_tokenizer.h"

namespace {

const synthpert::tokenizer::HfTokenizer& tokenizer() {
  static const auto tok = [] {
    const char* path = std::getenv("SYNTHPERT_FUZZ_TOKENIZER");
    if (!path) {
      std::fprintf(stderr, "set SYNTHPERT_FUZZ_TOKENIZER to a byte-level tokenizer.json\n");
      std::abort();
    }
    using namespace synthpert::tokenizer;
    return std::make_unique<HfTokenizer>(synthpert::read_json_input(path), TokenizerConfig{}, path);
  }();
  return *tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto ids = tokenizer().encode(text, /*add_special=*/false);
  if (!synthpert::is_valid_utf8(text)) return 0;  // encode replaces bad bytes (U+FFFD)
  const std::string back = tokenizer().decode(ids, /*skip_special=*/false);
  if (back != text) {
    std::fprintf(stderr, "round trip changed the text: %zu bytes in, %zu out\n", text.size(), back.size());
    std::abort();
  }
  return 0;
}
