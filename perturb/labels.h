// The three PerturbQA outcome classes and their canonical names.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace synthpert::perturb {

// Order used everywhere a class index appears (confusion matrices, probs).
enum class Label : int { kUp = 0, kDown = 1, kNde = 2 };
constexpr int kNumLabels = 3;
constexpr std::array<Label, 3> kAllLabels = {Label::kUp, Label::kDown, Label::kNde};

// "upregulated", "downregulated", "not differentially expressed".
const std::string& label_name(Label l);
// Exact canonical name only (the answer parser accepts free text).
std::optional<Label> label_from_name(std::string_view name);
inline int label_index(Label l) { return static_cast<int>(l); }

}  // namespace synthpert::perturb
