#include "tokenizer/pre_tokenizer.h"

#include "common/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

using json = nlohmann::json;

// What happens to the matched delimiters when a piece is split.
enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& s) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  throw InputError("tokenizer.json: split behavior '" + s + "' is not known");
}

// Splits `text` at the spans the regex matches, applying `behavior` to the
// matches (or, with `invert`, to the text between them). Appends to `out`.
void split_by(const Regex& re, const std::string& text, Behavior behavior, bool invert,
              std::vector<std::string>& out) {
  struct Span { size_t b, e; bool delim; };
  std::vector<Span> spans;
  size_t prev = 0;
  re.for_each_match(text, [&](size_t s, size_t e) {
    if (s > prev) spans.push_back({prev, s, invert});
    spans.push_back({s, e, !invert});
    prev = e;
  });
  if (prev < text.size()) spans.push_back({prev, text.size(), invert});

  std::string pending;  // MergedWithNext: delimiter waiting for the next piece
  bool has_pending = false;
  // Pieces before `first` came from earlier texts: nothing merges into them.
  const size_t first = out.size();
  bool last_was_delim = false;
  for (const Span& sp : spans) {
    std::string piece = text.substr(sp.b, sp.e - sp.b);
    switch (behavior) {
      case Behavior::Removed:
        if (!sp.delim) out.push_back(std::move(piece));
        break;
      case Behavior::Isolated:
        out.push_back(std::move(piece));
        break;
      case Behavior::Contiguous:
        if (sp.delim && last_was_delim && out.size() > first) out.back() += piece;
        else out.push_back(std::move(piece));
        break;
      case Behavior::MergedWithPrevious:
        if (sp.delim && out.size() > first && !last_was_delim) out.back() += piece;
        else out.push_back(std::move(piece));
        break;
      case Behavior::MergedWithNext:
        if (sp.delim) {
          if (has_pending) out.push_back(std::move(pending));
          pending = std::move(piece);
          has_pending = true;
        } else {
          out.push_back(has_pending ? pending + piece : std::move(piece));
          has_pending = false;
          pending.clear();
        }
        break;
    }
    last_was_delim = sp.delim;
  }
  if (has_pending) out.push_back(std::move(pending));
}

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(std::vector<std::string>& pieces, bool at_start) const override {
    for (const auto& p : parts_) p->split(pieces, at_start);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class SplitPre : public PreTokenizer {
 public:
  SplitPre(const std::string& pattern, Behavior b, bool invert)
      : re_(pattern, "tokenizer.json pre_tokenizer Split"), behavior_(b), invert_(invert) {}
  void split(std::vector<std::string>& pieces, bool) const override {
    std::vector<std::string> out;
    out.reserve(pieces.size() * 4);
    for (const auto& p : pieces) split_by(re_, p, behavior_, invert_, out);
    pieces.swap(out);
  }

 private:
  Regex re_;
  Behavior behavior_;
  bool invert_;
};

// GPT-2's word regex, which ByteLevel applies when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) re_ = std::make_unique<Regex>(kGpt2Pattern, "ByteLevel pre-tokenizer");
  }
  void split(std::vector<std::string>& pieces, bool) const override {
    std::vector<std::string> words;
    for (auto& p : pieces) {
      if (add_prefix_space_ && (p.empty() || p[0] != ' ')) p.insert(p.begin(), ' ');
      if (re_) split_by(*re_, p, Behavior::Isolated, false, words);
      else words.push_back(std::move(p));
    }
    pieces.clear();
    for (const auto& w : words) {
      std::string mapped;
      mapped.reserve(w.size() * 2);
      byte_level_encode(w, mapped);
      pieces.push_back(std::move(mapped));
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePre : public PreTokenizer {
 public:
  MetaspacePre(std::string replacement, PrependScheme scheme, bool split)
      : rep_(std::move(replacement)), scheme_(scheme), split_(split),
        rep_re_(regex_escape(rep_), "Metaspace pre-tokenizer") {}
  void split(std::vector<std::string>& pieces, bool at_start) const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string s;
      for (char c : pieces[i]) {
        if (c == ' ') s += rep_;
        else s += c;
      }
      const bool prepend = scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && i == 0 && at_start);
      if (prepend && s.compare(0, rep_.size(), rep_) != 0) s = rep_ + s;
      if (split_) split_by(rep_re_, s, Behavior::MergedWithNext, false, out);
      else out.push_back(std::move(s));
    }
    pieces.swap(out);
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
  Regex rep_re_;
};

class DigitsPre : public PreTokenizer {
 public:
  explicit DigitsPre(bool individual)
      : re_("\\p{N}", "Digits pre-tokenizer"), behavior_(individual ? Behavior::Isolated : Behavior::Contiguous) {}
  void split(std::vector<std::string>& pieces, bool) const override {
    std::vector<std::string> out;
    for (const auto& p : pieces) split_by(re_, p, behavior_, false, out);
    pieces.swap(out);
  }

 private:
  Regex re_;
  Behavior behavior_;
};

}  // namespace

std::string metaspace_replacement(const nlohmann::json& c) {
  const std::string rep = c.value("replacement", std::string("\xE2\x96\x81"));
  SP_CHECK_INPUT(is_valid_utf8(rep) && utf8_to_u32(rep).size() == 1,
                 "tokenizer.json: Metaspace replacement must be one character, got '", rep, "'");
  return rep;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& c) {
  if (c.is_null()) return nullptr;
  SP_CHECK_INPUT(c.is_object() && c.contains("type"), "tokenizer.json: pre_tokenizer must be an object with a \"type\"");
  const std::string type = c.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& p : c.at("pretokenizers"))
      if (auto t = make_pre_tokenizer(p)) parts.push_back(std::move(t));
    return std::make_unique<SequencePre>(std::move(parts));
  }
  if (type == "Split") {
    const auto& pat = c.at("pattern");
    std::string regex;
    if (pat.contains("Regex")) regex = pat.at("Regex").get<std::string>();
    else if (pat.contains("String")) regex = regex_escape(pat.at("String").get<std::string>());
    else throw InputError("tokenizer.json: Split pre-tokenizer pattern needs \"String\" or \"Regex\"");
    return std::make_unique<SplitPre>(regex, parse_behavior(c.at("behavior").get<std::string>()), c.value("invert", false));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelPre>(c.value("add_prefix_space", true), c.value("use_regex", true));
  if (type == "Metaspace") {
    PrependScheme scheme = PrependScheme::Always;
    if (c.contains("prepend_scheme")) {
      const std::string s = c.at("prepend_scheme").get<std::string>();
      SP_CHECK_INPUT(s == "always" || s == "first" || s == "never",
                     "tokenizer.json: Metaspace prepend_scheme '", s, "' is not one of always, first, never");
      scheme = s == "always" ? PrependScheme::Always : s == "first" ? PrependScheme::First : PrependScheme::Never;
    } else if (c.contains("add_prefix_space")) {
      scheme = c.at("add_prefix_space").get<bool>() ? PrependScheme::Always : PrependScheme::Never;
    }
    return std::make_unique<MetaspacePre>(metaspace_replacement(c), scheme, c.value("split", true));
  }
  if (type == "Digits") return std::make_unique<DigitsPre>(c.value("individual_digits", false));
  throw InputError("tokenizer.json: pre_tokenizer type '" + type +
                   "' is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Digits)");
}

}  // namespace synthpert::tokenizer
