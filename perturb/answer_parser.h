// Reads a model's free-text answer into one of the three labels.
//
// The text inside the last <answer>...</answer> (case-insensitive) is used when
// present; otherwise the text after the last </think>, otherwise all of it.
// Within it, case, punctuation, hyphens and extra words are ignored, and the
// usual phrasings are accepted ("up-regulated", "increased", "not DE", "no
// change", ...). If no label, or two different labels, are named, the answer is
// unparsed (nullopt): an ambiguous answer is not given the benefit of the doubt.
#pragma once

#include <optional>
#include <string_view>

#include "perturb/labels.h"

namespace synthpert::perturb {

std::optional<Label> parse_answer(std::string_view text);

}  // namespace synthpert::perturb
