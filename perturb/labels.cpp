#include "perturb/labels.h"

namespace synthpert::perturb {

const std::string& label_name(Label l) {
  static const std::array<std::string, 3> names = {"upregulated", "downregulated",
                                                   "not differentially expressed"};
  return names[label_index(l)];
}

std::optional<Label> label_from_name(std::string_view name) {
  for (Label l : kAllLabels)
    if (name == label_name(l)) return l;
  return std::nullopt;
}

}  // namespace synthpert::perturb
