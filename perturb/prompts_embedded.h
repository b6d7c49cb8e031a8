// The built-in prompt templates (perturb/prompts/*.txt), embedded at configure
// time so the binary needs no data files next to it. Generated definition:
// build/perturb/prompts_embedded.cpp.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace synthpert::perturb {

// (name, text) pairs; name is the file name without ".txt".
const std::vector<std::pair<std::string, std::string>>& embedded_prompts();

}  // namespace synthpert::perturb
