// libFuzzer target: a model folder's config.json. parse_config must refuse it
// with an InputError or give a config that survives a round trip: written
// back as Hugging Face JSON (to_hf_json, what init-model and --merge write)
// and read again, it writes the same JSON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"
#include "engine/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synthpert::engine;
  const auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;  // not JSON: load_config refuses it before us
  nlohmann::json written;
  try {
    written = to_hf_json(parse_config(j, "fuzz/config.json"));
  } catch (const synthpert::InputError&) {
    return 0;
  }
  const nlohmann::json again = to_hf_json(parse_config(written, "written config.json"));
  if (again != written) {
    std::fprintf(stderr, "round trip changed the config:\n%s\n%s\n", written.dump().c_str(), again.dump().c_str());
    std::abort();
  }
  return 0;
}
