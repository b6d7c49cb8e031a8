// The system message `synthpert train` gives text conversations that have
// none (every SynthPert CSV row, traces without a system turn):
//   --system-prompt FILE        the file's text (an empty file: no system message)
//   --prompt-template NAME|FILE the [system] section of that prompt template
//                               (perturb/prompt.h); its placeholders are filled
//                               from each example's cell_type, pert and gene
//   neither                     the template a conversation names in its
//                               "prompt_template" key (`synthpert data` rows
//                               carry it), else "reasoning"
#pragma once

#include <string>

#include "trainer/conversations.h"

namespace synthpert::trainer {

struct SystemPromptChoice {
  SystemPromptFn fn;      // empty: no system message
  std::string identity;   // what the run fingerprint records about the choice
};

// `file` wins when non-empty; else `prompt_template`; else each
// conversation's own template, "reasoning" where it names none.
SystemPromptChoice choose_system_prompt(const std::string& file, const std::string& prompt_template);

}  // namespace synthpert::trainer
