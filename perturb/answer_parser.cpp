#include "perturb/answer_parser.h"

#include <cctype>
#include <string>
#include <vector>

#include "perturb/ascii_text.h"

namespace synthpert::perturb {

namespace {

// The part of the text that holds the answer (see the header).
std::string answer_region(std::string_view text) {
  const std::string t = ascii_lower(text);
  const size_t open = t.rfind("<answer>");
  if (open != std::string::npos) {
    const size_t start = open + 8;
    const size_t close = t.find("</answer>", start);
    return t.substr(start, close == std::string::npos ? std::string::npos : close - start);
  }
  const size_t think = t.rfind("</think>");
  return think == std::string::npos ? t : t.substr(think + 8);
}

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

}  // namespace

std::optional<Label> parse_answer(std::string_view text) {
  std::string s = words(answer_region(text));
  // Negated phrasings first, so "not differentially expressed" is not read as DE.
  bool nde = false;
  for (const char* p : {"not differentially expressed", "non differentially expressed",
                        "not significantly differentially expressed", "not de", "non de", "nde",
                        "no change", "unchanged", "not changed", "no significant change",
                        "not affected", "unaffected"})
    nde |= take(s, p);
  // "not upregulated" could mean unchanged or down: ambiguous, so unparsed.
  for (const char* p : {"not upregulated", "not up regulated", "not downregulated", "not down regulated",
                        "not increased", "not decreased"})
    if (take(s, p)) return std::nullopt;
  bool up = false, down = false;
  for (const char* p : {"upregulated", "up regulated", "upregulation", "up", "increased", "increase"})
    up |= take(s, p);
  for (const char* p : {"downregulated", "down regulated", "downregulation", "down", "decreased", "decrease"})
    down |= take(s, p);
  if (nde + up + down != 1) return std::nullopt;
  return nde ? Label::kNde : up ? Label::kUp : Label::kDown;
}

}  // namespace synthpert::perturb
