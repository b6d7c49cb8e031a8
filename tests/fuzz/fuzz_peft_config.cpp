// libFuzzer target: an adapter folder's adapter_config.json. parse_peft_config
// must refuse it with an InputError or give a spec within what the engine
// applies (positive rank, dropout in [0, 1), a finite scale, named targets)
// that survives a round trip through the config save_peft_adapter writes.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"
#include "engine/peft_config.h"

namespace {

void fail(const char* what, const nlohmann::json& written) {
  std::fprintf(stderr, "%s\n%s\n", what, written.dump().c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synthpert::engine;
  const auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;  // not JSON: read_json_input refuses it before us
  LoraSpec spec;
  try {
    spec = parse_peft_config(j, "fuzz/adapter_config.json");
  } catch (const synthpert::InputError&) {
    return 0;
  } catch (const nlohmann::json::exception&) {
    return 0;  // a field of another type: read_json_fields makes it an InputError
  }
  const nlohmann::json written = peft_config_json(spec, "base");
  if (spec.r < 1 || !(spec.dropout >= 0 && spec.dropout < 1) || !std::isfinite(spec.scale()) ||
      spec.target_modules.empty())
    fail("accepted a spec the engine cannot apply:", written);
  for (const auto* names : {&spec.target_modules, &spec.exclude_modules})
    for (const auto& m : *names)
      if (m.empty()) fail("accepted an empty module name:", written);
  const LoraSpec again = parse_peft_config(written, "written adapter_config.json");
  if (peft_config_json(again, "base") != written) fail("round trip changed the config:", written);
  return 0;
}
