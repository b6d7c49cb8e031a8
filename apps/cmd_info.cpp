// `synthpert info`: versions and build features as JSON (handy in bug reports).
#include <torch/version.h>

#include "apps/command.h"

namespace synthpert::cli {
namespace {

RunFn setup_info(CLI::App&) {
  return [] {
    nlohmann::json j;
    j["synthpert"] = "0.1.0";
    j["libtorch"] = TORCH_VERSION;
#ifdef SYNTHPERT_ENGINE_CUDA
    j["cuda_engine"] = true;
#else
    j["cuda_engine"] = false;
#endif
    print_json(j);
    return 0;
  };
}

const CommandRegistrar reg("info", "Print versions and build features as JSON", setup_info);

}  // namespace
}  // namespace synthpert::cli
