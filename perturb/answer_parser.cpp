#include "perturb/answer_parser.h"

#include <cctype>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "perturb/ascii_text.h"

namespace synthpert::perturb {

namespace {

// One clause of the answer: its words, lower case, single-spaced and padded
// with spaces for whole-word matching; `question` when its sentence ended in
// '?'; `sentence` numbers its sentence.
struct Clause {
  std::string words = " ";
  bool question = false;
  size_t sentence = 0;
};

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)); }

// UTF-8 dashes and the ellipsis end a clause like their ASCII stand-ins.
bool utf8_break(const std::string& s, size_t i) {
  return s.compare(i, 3, "\xe2\x80\xa6") == 0 || s.compare(i, 3, "\xe2\x80\x94") == 0 ||
         s.compare(i, 3, "\xe2\x80\x93") == 0;
}

// Splits at sentence and clause punctuation, at dashes (a hyphen not after a
// letter or digit) and line ends. Within a clause letters and digits are
// kept and everything else is one space, so "Up-regulated" and "up
// regulated" read the same, "up- or downregulated" is one clause, and
// "isn't" (any apostrophe) reads "isn t". Every clause of a sentence that
// ends in '?' is a question.
std::vector<Clause> clauses(const std::string& s) {
  std::vector<Clause> out(1);
  size_t first_of_sentence = 0;
  auto space = [&] {
    if (out.back().words.back() != ' ') out.back().words.push_back(' ');
  };
  auto end_clause = [&] {
    space();
    if (out.back().words == " ") return;
    const size_t current = out.back().sentence;
    out.emplace_back().sentence = current;
  };
  auto end_sentence = [&](bool question) {
    end_clause();
    for (size_t k = first_of_sentence; k + 1 < out.size(); ++k) out[k].question = question;
    first_of_sentence = out.size() - 1;
    out.back().sentence = out.size() > 1 ? out[out.size() - 2].sentence + 1 : 0;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (alnum(c)) {
      out.back().words.push_back(c);
    } else if (c == '-' && i > 0 && alnum(s[i - 1])) {
      space();  // a word's hyphen, or a suspended one ("up- or down-regulated")
    } else if (c == '.' || c == '!' || c == '?' || c == '\n') {
      end_sentence(c == '?');
    } else if (std::string_view(",;:()[]{}-\r").find(c) != std::string_view::npos) {
      end_clause();
    } else if (utf8_break(s, i)) {
      end_clause();
      i += 2;
    } else {
      space();
    }
  }
  end_sentence(false);
  out.pop_back();  // the empty clause after the last
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

bool take_any(std::string& s, std::initializer_list<const char*> phrases) {
  bool found = false;
  for (const char* p : phrases) found |= take(s, p);
  return found;
}

bool blank(const std::string& s) {
  for (char c : s)
    if (alnum(c)) return false;
  return true;
}

// The part of the text that holds the answer (see the header), or nullopt
// when the reply has none to read.
std::optional<std::string> answer_region(std::string_view text, bool cut_off) {
  std::string t = ascii_lower(text);
  const size_t think_open = t.rfind("<think>"), think_close = t.rfind("</think>");
  if (think_open != std::string::npos && (think_close == std::string::npos || think_close < think_open))
    return std::nullopt;  // the reasoning never ended
  if (think_close != std::string::npos) t.erase(0, think_close + 8);
  // A cut-off reply whose last <answer> is still open was writing a new
  // answer, replacing any earlier block: what it would have said is unknown.
  const size_t last_open = t.rfind("<answer>");
  if (cut_off && last_open != std::string::npos && t.find("</answer>", last_open) == std::string::npos)
    return std::nullopt;
  // The last <answer> block with something in it: a reply may name the
  // empty tags it was asked to use ("inside <answer></answer> tags").
  for (size_t open = last_open; open != std::string::npos;
       open = open == 0 ? std::string::npos : t.rfind("<answer>", open - 1)) {
    const size_t start = open + 8, close = t.find("</answer>", start);
    std::string inside = t.substr(start, close == std::string::npos ? std::string::npos : close - start);
    if (!blank(inside)) return inside;
  }
  if (cut_off) return std::nullopt;  // untagged text cut off mid-sentence
  for (const char* tag : {"<answer>", "</answer>"})
    for (size_t at; (at = t.find(tag)) != std::string::npos;) t.erase(at, std::char_traits<char>::length(tag));
  return t;
}

// What one clause says of each label.
struct ClauseReading {
  bool up = false, down = false, nde = false;
  bool hedged = false, negated = false;
  bool continues_list = false;  // opens with "or" / "nor": "not up, down, or unchanged"
  bool list_negated = false;    // in a list whose negation it inherits
};

ClauseReading read_clause(std::string s) {
  ClauseReading r;
  r.continues_list = (s.rfind(" or ", 0) == 0 && s.rfind(" or rather ", 0) != 0) || s.rfind(" nor ", 0) == 0;
  // The task's own wording ("when MYC is knocked down") is not a direction.
  take_any(s, {"knocked down", "knock down", "knocks down", "knocking down"});
  // Negated phrasings first, so "not differentially expressed" is not read
  // as DE and its "not" does not count as a negation below.
  r.nde = take_any(s, {"not differentially expressed", "non differentially expressed",
                       "not significantly differentially expressed", "not de", "non de", "nde",
                       "no differential expression", "no change", "unchanged", "not changed", "not change",
                       "doesn t change", "doesnt change", "not significantly changed", "no significant change",
                       "not affected", "unaffected"});
  r.up = take_any(s, {"upregulated", "up regulated", "upregulation", "up", "increased", "increases", "increase"});
  r.down = take_any(s, {"downregulated", "down regulated", "downregulation", "down", "decreased", "decreases",
                        "decrease"});
  // Whole clauses rather than a few words before the label: a hedge may
  // stand far before it ("not at all likely to be upregulated") or after it
  // ("upregulation is unlikely"), and a denied label is only ever lost,
  // never read as another. A negation does not deny NDE: its phrasings hold
  // one already, and a second is most often about something else ("not DE
  // as MYC does not bind it").
  r.hedged = take_any(s, {"unlikely", "hardly", "barely", "scarcely", "doubt", "doubtful", "improbable", "unclear",
                          "uncertain", "unsure"});
  r.negated = r.hedged ||
              take_any(s, {"not", "no", "never", "nor", "neither", "non", "without", "rather than", "instead of",
                           "cannot", "can t", "won t", "isn t", "aren t", "wasn t", "weren t", "doesn t", "don t",
                           "didn t", "hasn t", "haven t", "hadn t", "wouldn t", "shouldn t", "couldn t", "cant",
                           "wont", "isnt", "arent", "wasnt", "werent", "doesnt", "dont", "didnt", "hasnt", "havent",
                           "hadnt", "wouldnt", "shouldnt", "couldnt"});
  return r;
}

}  // namespace

std::optional<Label> parse_answer(std::string_view text, bool cut_off) {
  const auto region = answer_region(text, cut_off);
  if (!region) return std::nullopt;
  const std::vector<Clause> cs = clauses(*region);
  std::vector<ClauseReading> rs;
  for (const Clause& c : cs) rs.push_back(read_clause(c.words));
  // A list closed by "or"/"nor" shares the negation that opened it: in "not
  // upregulated (or downregulated)" and "not upregulated, downregulated, or
  // unchanged" no label is stated. Only denies, so it can only lose answers.
  for (size_t i = 0; i < cs.size(); ++i) {
    if (!rs[i].continues_list) continue;
    for (size_t j = i; j-- > 0 && cs[j].sentence == cs[i].sentence;) {
      if (!rs[j].negated) continue;
      for (size_t k = j + 1; k <= i; ++k) {
        rs[k].negated = true;
        rs[k].hedged = rs[k].hedged || rs[j].hedged;
        rs[k].list_negated = true;
      }
      break;
    }
  }
  std::set<Label> stated, denied;
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].question) continue;  // "Upregulated? No." states nothing
    const ClauseReading& r = rs[i];
    // A list's inherited negation denies its NDE item too: "not upregulated,
    // downregulated, or unchanged" states none of the three.
    if (r.nde) (r.hedged || r.list_negated ? denied : stated).insert(Label::kNde);
    if (r.up) (r.negated ? denied : stated).insert(Label::kUp);
    if (r.down) (r.negated ? denied : stated).insert(Label::kDown);
  }
  // One label stated and never doubted: "Not upregulated, but downregulated"
  // is downregulated; "upregulated or downregulated", "not upregulated" and
  // "upregulated. Or not upregulated" are unparsed.
  if (stated.size() != 1 || denied.count(*stated.begin())) return std::nullopt;
  return *stated.begin();
}

}  // namespace synthpert::perturb
