// The built-in prompt files, embedded at configure time so the binary needs no
// data files next to it. Generated definitions: build/perturb/prompts_embedded.cpp
// and build/perturb/trace_prompts_embedded.cpp.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace synthpert::perturb {

// (name, text) pairs; name is the file name without ".txt".
// Question templates, perturb/prompts/*.txt.
const std::vector<std::pair<std::string, std::string>>& embedded_prompts();
// Teacher and judge prompts of `synthpert traces`, perturb/prompts/traces/*.txt.
const std::vector<std::pair<std::string, std::string>>& embedded_trace_prompts();

}  // namespace synthpert::perturb
