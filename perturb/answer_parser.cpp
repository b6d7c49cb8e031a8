#include "perturb/answer_parser.h"

#include <cctype>
#include <string>
#include <vector>

#include "perturb/ascii_text.h"

namespace synthpert::perturb {

namespace {

// Letters and digits kept, everything else one space, so "Up-regulated." and
// "up regulated" read the same; padded with spaces for whole-word matching.
std::string words(const std::string& s) {
  std::string out = " ";
  for (char c : s) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c));
    if (keep) out.push_back(c);
    else if (out.back() != ' ') out.push_back(' ');
  }
  if (out.back() != ' ') out.push_back(' ');
  return out;
}

// Removes every occurrence of `phrase` (space-padded) from `s`; returns whether any was found.
bool take(std::string& s, const std::string& phrase) {
  const std::string p = " " + phrase + " ";
  bool found = false;
  for (size_t pos; (pos = s.find(p)) != std::string::npos;) {
    s.replace(pos, p.size(), " ");
    found = true;
  }
  return found;
}

bool blank(const std::string& s) { return words(s) == " "; }

// The part of the text that holds the answer (see the header), or nullopt
// when the reply has none to read.
std::optional<std::string> answer_region(std::string_view text, bool cut_off) {
  std::string t = ascii_lower(text);
  const size_t think_open = t.rfind("<think>"), think_close = t.rfind("</think>");
  if (think_open != std::string::npos && (think_close == std::string::npos || think_close < think_open))
    return std::nullopt;  // the reasoning never ended
  if (think_close != std::string::npos) t.erase(0, think_close + 8);
  // The last <answer> block with something in it: a reply may name the
  // empty tags it was asked to use ("inside <answer></answer> tags").
  for (size_t open = t.rfind("<answer>"); open != std::string::npos;
       open = open == 0 ? std::string::npos : t.rfind("<answer>", open - 1)) {
    const size_t start = open + 8, close = t.find("</answer>", start);
    std::string inside = t.substr(start, close == std::string::npos ? std::string::npos : close - start);
    if (blank(inside)) continue;
    if (close == std::string::npos && cut_off) return std::nullopt;  // the answer may stop mid-word
    return inside;
  }
  if (cut_off) return std::nullopt;  // untagged text cut off mid-sentence
  for (const char* tag : {"<answer>", "</answer>"})
    for (size_t at; (at = t.find(tag)) != std::string::npos;) t.erase(at, std::char_traits<char>::length(tag));
  return t;
}

}  // namespace

std::optional<Label> parse_answer(std::string_view text, bool cut_off) {
  const auto region = answer_region(text, cut_off);
  if (!region) return std::nullopt;
  std::string s = words(*region);
  // Negated phrasings first, so "not differentially expressed" is not read as DE.
  bool nde = false;
  for (const char* p : {"not differentially expressed", "non differentially expressed",
                        "not significantly differentially expressed", "not de", "non de", "nde",
                        "no change", "unchanged", "not changed", "no significant change",
                        "not affected", "unaffected"})
    nde |= take(s, p);
  bool up = false, down = false;
  for (const char* p : {"upregulated", "up regulated", "upregulation", "up", "increased", "increase"})
    up |= take(s, p);
  for (const char* p : {"downregulated", "down regulated", "downregulation", "down", "decreased", "decrease"})
    down |= take(s, p);
  if (nde + up + down != 1) return std::nullopt;
  // A direction beside a negation ("not upregulated", "isn't increased", "no
  // upregulation") could mean unchanged or the other direction: unparsed
  // rather than read as the direction it rules out.
  if (up || down)
    for (const char* p : {"not", "no", "never", "nor", "neither", "without", "cannot", "can t", "won t", "isn",
                          "aren", "wasn", "weren", "doesn", "don", "didn", "hasn", "haven", "wouldn", "shouldn"})
      if (take(s, p)) return std::nullopt;
  return nde ? Label::kNde : up ? Label::kUp : Label::kDown;
}

}  // namespace synthpert::perturb
