#include "engine/tensor_io.h"

#include <cstring>

#include "common/error.h"
#include "engine/model.h"

namespace synthpert::engine {

void save_tensors(const std::string& path, const NamedTensors& tensors,
                  std::optional<StDType> dtype, const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& [name, t] : tensors) {
    SP_CHECK(t.defined(), "save_tensors: tensor '", name, "' is undefined");
    const StDType st = dtype ? *dtype : to_st_dtype(t.scalar_type());
    specs.push_back({name, st, t.sizes().vec()});
    by_name[name] = t;
  }
  write_safetensors(path, specs, [&](const TensorSpec& spec, uint8_t* out) {
    auto c = by_name.at(spec.name).detach().to(torch::kCPU).to(to_scalar_type(spec.dtype)).contiguous();
    std::memcpy(out, c.data_ptr(), spec.nbytes());
  }, metadata);
}

std::map<std::string, torch::Tensor> load_tensors(const std::string& path) {
  SafetensorsFile file(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& info : file.header().tensors) {
    auto view = torch::from_blob(const_cast<uint8_t*>(file.data(info)), info.shape,
                                 torch::TensorOptions().dtype(to_scalar_type(info.dtype)));
    out[info.name] = view.clone();
  }
  return out;
}

}  // namespace synthpert::engine
