// libFuzzer target for the safetensors header parser. Built when
// -DSYNTHPERT_FUZZ=ON with clang (see tests/engine/CMakeLists.txt):
//   ./build-fuzz/tests/engine/fuzz_safetensors_header -max_total_time=60
// Accepting or throwing InputError are both fine; anything else is a bug.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "engine/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto h = synthpert::engine::parse_safetensors_header(data, size, size, "fuzz");
    for (const auto& t : h.tensors)
      if (h.data_start + t.end > size) __builtin_trap();
  } catch (const synthpert::InputError&) {
  }
  return 0;
}
