// Reads a model's free-text answer into one of the three labels.
//
// Where the answer is read: a reply with an unclosed <think> (reasoning that
// never ended) has none. Otherwise, after the last </think> if there is one,
// the text inside the last non-empty <answer>...</answer> (case-insensitive;
// the closing tag may be missing), else all of that text. A reply cut off at
// its token limit (`cut_off`, finish reason "length") has an answer only in a
// closed <answer> block, and only if its last <answer> was closed: untagged
// text may stop mid-sentence, and a reply cut off inside a new <answer> block
// was replacing its earlier answer, so that earlier answer is not its answer
// ("<answer>down</answer><answer>upregul" is unparsed, as the same reply
// ending on its own would be read from its last block).
//
// How it is read, clause by clause (clauses end at . , ; : ! ? ( ) [ ], a dash,
// an ellipsis or a line end):
// - case, other punctuation, hyphens and extra words are ignored, and the
//   usual phrasings are accepted ("up-regulated", "increased", "not DE", "no
//   change", ...); "knocked down" and "knock down", the task's own wording,
//   are not a direction;
// - a clause with a negation (not, no, n't, never, nor, without, rather than,
//   instead of, ...) denies the direction(s) it names; the NDE phrasings
//   hold their own negation, so a second one beside them does not deny them;
// - a clause with a hedge (unlikely, hardly, barely, doubt, doubtful, unclear,
//   uncertain, ...) denies every label it names, wherever the hedge stands
//   ("unlikely to be upregulated", "upregulation is unlikely");
// - a sentence ending in '?' states nothing.
// The answer is the one label stated somewhere and denied nowhere: "No, it is
// upregulated", "Upregulated... no doubt" and "Not upregulated, but
// downregulated" are read; "upregulated or downregulated", "not upregulated"
// (unchanged, or the other way?), "it is unlikely to be upregulated" and
// "upregulated? No." are unparsed (nullopt). An ambiguous answer is never
// given the benefit of the doubt, nor read as the label it rules out.
#pragma once

#include <optional>
#include <string_view>

#include "perturb/labels.h"

namespace synthpert::perturb {

std::optional<Label> parse_answer(std::string_view text, bool cut_off = false);

}  // namespace synthpert::perturb
