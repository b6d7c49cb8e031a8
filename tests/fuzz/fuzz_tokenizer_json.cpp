// libFuzzer target: the tokenizer files of an untrusted model folder. The
// input up to its first NUL byte is tokenizer.json, the rest (if any)
// tokenizer_config.json. Tokenizer::load must either refuse the folder with
// an InputError or give a tokenizer that encodes and decodes without
// failing; any other exception or a crash is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "tests/fuzz/fuzz_files.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using synthpert::path_join;
  using synthpert::fuzz::write_file_or_abort;
  const std::string& folder = synthpert::fuzz::scratch_folder("fuzz_tokenizer_json");
  const char* text = reinterpret_cast<const char*>(data);
  const std::string tokenizer_json = path_join(folder, "tokenizer.json");
  const std::string config_json = path_join(folder, "tokenizer_config.json");
  size_t split = 0;
  while (split < size && text[split] != '\0') ++split;
  write_file_or_abort(tokenizer_json, text, split);
  if (split < size) {
    write_file_or_abort(config_json, text + split + 1, size - split - 1);
  } else {
    unlink(config_json.c_str());
  }
  try {
    const auto tok = synthpert::tokenizer::Tokenizer::load(folder);
    for (const char* s : {"", "Hello world", " GENE1 up\n\n", "\xc3\xa9t\xc3\xa9 \xf0\x9f\xa7\xac", "<s>a</s>"}) {
      const auto ids = tok->encode(s, true);
      (void)tok->decode(ids, false);
      (void)tok->decode(ids, true);
    }
    const int64_t n = tok->vocab_size();
    for (int64_t id : {int64_t{-1}, int64_t{0}, n - 1, n}) (void)tok->id_to_token(id);
  } catch (const synthpert::InputError&) {
  }
  return 0;
}
