// Reads a model's free-text answer into one of the three labels.
//
// Where the answer is read: a reply with an unclosed <think> (reasoning that
// never ended) has none. Otherwise, after the last </think> if there is one,
// the text inside the last non-empty <answer>...</answer> (case-insensitive;
// the closing tag may be missing), else all of that text. A reply cut off at
// its token limit (`cut_off`, finish reason "length") counts only a closed
// <answer> block: anything else may stop mid-sentence.
//
// Within it, case, punctuation, hyphens and extra words are ignored, and the
// usual phrasings are accepted ("up-regulated", "increased", "not DE", "no
// change", ...). If no label, or two different labels, are named, or a
// direction stands beside a negation ("not upregulated", "isn't increased",
// "no upregulation"), the answer is unparsed (nullopt): an ambiguous answer is
// not given the benefit of the doubt.
#pragma once

#include <optional>
#include <string_view>

#include "perturb/labels.h"

namespace synthpert::perturb {

std::optional<Label> parse_answer(std::string_view text, bool cut_off = false);

}  // namespace synthpert::perturb
