#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <cctype>
#include <optional>
#include <vector>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Oniguruma's sets, as PCRE2 character-class bodies. Each was checked code
// point by code point against Oniguruma (tests/tokenizer/test_regex_oracle.cpp
// checks the rewritten patterns against it). PCRE2's own \w, \s, [:alpha:],
// [:punct:], ... differ: its \s has U+180E, its \w is \p{L}\p{N}_.
constexpr const char* kWordBody = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";
// A bare \w (and \b) also has these Latin-1 numbers (Oniguruma takes code
// points below 256 from its Latin-1 table there); \w inside a class has not.
constexpr const char* kBareWordBody = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}";
constexpr const char* kHexBody = "0-9A-Fa-f";

// One member of a character class: a class body, or (negated) every code
// point outside a body.
struct ClassItem {
  std::string body;
  bool negated = false;
};

// The POSIX bracket [:name:] in Oniguruma's Unicode meaning; nullopt keeps
// PCRE2's, which agrees.
std::optional<ClassItem> posix_item(const std::string& name, bool negated) {
  auto item = [&](const char* body, bool complement) { return ClassItem{body, complement != negated}; };
  if (name == "alpha") return item("\\p{Alphabetic}", false);
  if (name == "alnum") return item("\\p{Alphabetic}\\p{Nd}", false);
  if (name == "upper") return item("\\p{Uppercase}", false);
  if (name == "lower") return item("\\p{Lowercase}", false);
  if (name == "punct") return item("\\p{P}", false);
  if (name == "space") return item("\\p{White_Space}", false);
  if (name == "blank") return item("\\t\\p{Zs}", false);
  if (name == "word") return item(kWordBody, false);
  if (name == "graph") return item("\\p{White_Space}\\p{Cc}\\p{Cs}\\p{Cn}", true);
  if (name == "print") return item("\\p{Zl}\\p{Zp}\\p{Cc}\\p{Cs}\\p{Cn}\\x{9}-\\x{D}\\x{85}", true);
  return std::nullopt;  // cntrl, digit, xdigit, ascii
}

// The class item of [:name:] (or \p{name}) for the POSIX names PCRE2 reads
// as Oniguruma does, which PCRE2 knows only inside brackets.
ClassItem bracket_item(const std::string& name, bool negated) {
  return {"[:" + std::string(negated ? "^" : "") + name + ":]", false};
}

// The class item of the escape at p[i] (a backslash) when its meaning differs
// between the engines: \s \S \w \W \h \H, and \p{..} / \P{..} / \p{^..} of a
// POSIX name (Oniguruma's \p{Word}, \p{Alnum}, ... mean what its [:word:],
// [:alnum:], ... mean). Sets `last` to the escape's last index.
std::optional<ClassItem> escape_set(const std::string& p, size_t i, bool in_class, size_t& last) {
  last = i + 1;
  switch (p[i + 1]) {
    case 's': return ClassItem{"\\p{White_Space}", false};
    case 'S': return ClassItem{"\\P{White_Space}", false};
    case 'w': return ClassItem{in_class ? kWordBody : kBareWordBody, false};
    case 'W': return ClassItem{in_class ? kWordBody : kBareWordBody, true};
    case 'h': return ClassItem{kHexBody, false};
    case 'H': return ClassItem{kHexBody, true};
    case 'p':
    case 'P': break;
    default: return std::nullopt;
  }
  const size_t close = p.find('}', i + 2);
  if (i + 2 >= p.size() || p[i + 2] != '{' || close == std::string::npos) return std::nullopt;
  std::string name = p.substr(i + 3, close - i - 3);
  bool negated = p[i + 1] == 'P';
  if (!name.empty() && name[0] == '^') {
    negated = !negated;
    name.erase(0, 1);
  }
  // Oniguruma's property names ignore case, spaces, '-' and '_'.
  std::string key;
  for (char c : name)
    if (c != ' ' && c != '_' && c != '-') key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* const kPosix[] = {"alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower",
                                       "print", "punct", "space", "upper", "xdigit", "word", "ascii"};
  for (const char* n : kPosix) {
    if (key != n) continue;
    last = close;
    if (auto item = posix_item(key, negated)) return item;
    return bracket_item(key, negated);
  }
  return std::nullopt;
}

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Copies the escape at p[i] (a backslash) to `out` in PCRE2's spelling when
// it is not a set: \v is a vertical tab and \uHHHH a code point in
// Oniguruma; \p{..} \x{..} \o{..} are one escape. Returns the index of its
// last character.
size_t copy_escape(const std::string& p, size_t i, std::string& out) {
  const char e = p[i + 1];
  if (e == 'v') {
    out += "\\x{B}";
    return i + 1;
  }
  if (e == 'u' && i + 5 < p.size() && is_hex(p[i + 2]) && is_hex(p[i + 3]) && is_hex(p[i + 4]) && is_hex(p[i + 5])) {
    out += "\\x{" + p.substr(i + 2, 4) + "}";
    return i + 5;
  }
  out += '\\';
  out += e;
  const size_t close = p.find('}', i + 2);
  if ((e == 'p' || e == 'P' || e == 'x' || e == 'o') && i + 2 < p.size() && p[i + 2] == '{' && close != std::string::npos) {
    out.append(p, i + 2, close - i - 1);
    return close;
  }
  return i + 1;
}

// Translates the character class that opens at p[i] ('['); `i` ends on its
// closing ']'. PCRE2 classes have no complement of a set inside them, so a
// class holding one becomes an alternation (or, negated, a lookahead).
std::string translate_class(const std::string& p, size_t& i) {
  const size_t open = i;
  bool negated = false;
  if (i + 1 < p.size() && p[i + 1] == '^') {
    negated = true;
    ++i;
  }
  std::string body;
  std::vector<std::string> complements;  // the class also holds every code point outside each
  auto add = [&](const ClassItem& item) {
    if (item.negated) complements.push_back(item.body);
    else body += item.body;
  };
  // A set may end a class with '-' (a literal) but never start a range.
  auto no_range_after_set = [&] {
    SP_CHECK_INPUT(!(i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']'), "regex '", p,
                   "': a range cannot start at a set (offset ", i + 1, ")");
  };
  bool first = true;
  for (++i; i < p.size(); ++i, first = false) {
    const char c = p[i];
    if (c == ']' && !first) break;
    if (c == '\\' && i + 1 < p.size()) {
      size_t last = 0;
      if (auto set = escape_set(p, i, true, last)) {
        add(*set);
        i = last;
        no_range_after_set();
      } else {
        i = copy_escape(p, i, body);
      }
      continue;
    }
    if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const size_t end = p.find(":]", i + 2);
      SP_CHECK_INPUT(end != std::string::npos, "regex '", p, "': unterminated POSIX class at offset ", i);
      const bool neg = p[i + 2] == '^';
      const std::string name = p.substr(i + 2 + neg, end - i - 2 - neg);
      if (auto item = posix_item(name, neg)) add(*item);
      else body.append(p, i, end + 2 - i);
      i = end + 1;
      no_range_after_set();
      continue;
    }
    SP_CHECK_INPUT(c != '[', "regex '", p, "': a class nested in a class (offset ", i,
                   ") is not supported; write the union as one class or an alternation");
    SP_CHECK_INPUT(!(c == '&' && i + 1 < p.size() && p[i + 1] == '&'), "regex '", p,
                   "': class intersection '&&' (offset ", i, ") is not supported");
    // A literal; '^' and ']' escaped so the body may open a class anywhere.
    if (c == '^' || c == ']') body += '\\';
    body += c;
  }
  SP_CHECK_INPUT(i < p.size(), "regex '", p, "': the class opened at offset ", open, " is never closed");
  if (complements.empty()) return (negated ? "[^" : "[") + body + "]";
  if (!negated) {
    std::vector<std::string> parts;
    if (!body.empty()) parts.push_back("[" + body + "]");
    for (const auto& b : complements) parts.push_back("[^" + b + "]");
    if (parts.size() == 1) return parts[0];
    std::string out = "(?:";
    for (size_t k = 0; k < parts.size(); ++k) out += (k ? "|" : "") + parts[k];
    return out + ")";
  }
  // Outside the body and inside every complemented set.
  std::string out = "(?:";
  if (!body.empty()) out += "(?![" + body + "])";
  for (size_t k = 0; k + 1 < complements.size(); ++k) out += "(?=[" + complements[k] + "])";
  return out + "[" + complements.back() + "])";
}

// Length of an Oniguruma interval "{n}", "{n,}", "{n,m}" or "{,m}" at p[i]
// (0 if the brace is a literal, as in both engines); `low` and `high` get its
// bounds as written, `fixed` tells "{n}".
size_t interval_at(const std::string& p, size_t i, std::string& low, std::string& high, bool& fixed) {
  auto digits = [&](size_t k) {
    while (k < p.size() && p[k] >= '0' && p[k] <= '9') ++k;
    return k;
  };
  size_t k = digits(i + 1);
  low = p.substr(i + 1, k - i - 1);
  fixed = true;
  high.clear();
  if (k < p.size() && p[k] == ',') {
    fixed = false;
    const size_t h = digits(k + 1);
    high = p.substr(k + 1, h - k - 1);
    k = h;
  }
  if (k >= p.size() || p[k] != '}' || (low.empty() && high.empty())) return 0;
  return k + 1 - i;
}

}  // namespace

std::string oniguruma_to_pcre2(const std::string& p) {
  std::string out;
  // Where in `out` the last complete atom (character, escape, class or
  // group) starts, npos when a quantifier there would have nothing to
  // repeat; and where the open groups start.
  size_t atom = std::string::npos;
  std::vector<size_t> groups;
  const std::string bare_word = std::string("[") + kBareWordBody + "]";
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      atom = out.size();
      size_t last = 0;
      if (auto set = escape_set(p, i, false, last)) {
        out += (set->negated ? "[^" : "[") + set->body + "]";
        i = last;
      } else if (e == 'b' || e == 'B') {
        // Word boundaries by Oniguruma's word characters, not PCRE2's.
        const std::string& w = bare_word;
        out += e == 'b' ? "(?:(?<=" + w + ")(?!" + w + ")|(?<!" + w + ")(?=" + w + "))"
                        : "(?:(?<=" + w + ")(?=" + w + ")|(?<!" + w + ")(?!" + w + "))";
        atom = std::string::npos;
        ++i;
      } else {
        i = copy_escape(p, i, out);
      }
      continue;
    }
    if (c == '[') {
      atom = out.size();
      out += translate_class(p, i);
      continue;
    }
    std::string low, high;
    bool fixed = false;
    const size_t ilen = c == '{' ? interval_at(p, i, low, high, fixed) : 0;
    if (ilen > 0) {
      // Oniguruma's default syntax (the one Hugging Face compiles with) has
      // no possessive interval and no lazy fixed interval: "X{1,3}+" is
      // "(?:X{1,3})+" and "X{2}?" is "(?:X{2})?", where PCRE2 reads a
      // possessive and a lazy quantifier. "{,m}" is "{0,m}", which PCRE2
      // 10.42 would take literally.
      const std::string interval = "{" + (low.empty() ? "0" : low) + (fixed ? "" : "," + high) + "}";
      const char next = i + ilen < p.size() ? p[i + ilen] : '\0';
      if (atom != std::string::npos && (next == '+' || (fixed && next == '?'))) {
        out.insert(atom, "(?:");
        out += interval + ")";
      } else {
        out += interval;
      }
      i += ilen - 1;
      continue;
    }
    if (c == '(') {
      groups.push_back(out.size());
      atom = std::string::npos;
    } else if (c == ')') {
      atom = std::string::npos;
      if (!groups.empty()) {
        atom = groups.back();
        groups.pop_back();
      }
    } else if (c == '|') {
      atom = std::string::npos;
    } else if (std::string_view("*+?").find(c) == std::string_view::npos && (static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      atom = out.size();  // a character (the first byte of its UTF-8)
    }
    out += c;
  }
  return out;
}

std::string regex_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/#& ~").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

Regex::Regex(const std::string& pattern, const std::string& where)
    : impl_(std::make_unique<Impl>()), pattern_(pattern) {
  const std::string translated = oniguruma_to_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE offset = 0;
  // Oniguruma's "^" and "$" are line anchors (after/before any "\n"), which
  // is PCRE2's multiline mode with LF as the newline.
  std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> ctx(
      pcre2_compile_context_create(nullptr), &pcre2_compile_context_free);
  pcre2_set_newline(ctx.get(), PCRE2_NEWLINE_LF);
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &offset, ctx.get());
  SP_CHECK_INPUT(impl_->code, where, ": regex '", pattern, "' does not compile (",
                 pcre2_message(err), " at offset ", offset, ")");
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

void Regex::for_each_match(std::string_view text,
                           const std::function<void(size_t, size_t)>& fn) const {
  // One match-data block per thread, reused: allocating it per call costs
  // more than matching a short piece.
  thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = impl_->jit
        ? pcre2_jit_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr)
        : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    SP_CHECK_INPUT(rc >= 0, "regex '", pattern_, "' failed while matching: ", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t start = ov[0], end = ov[1];
    if (start >= text.size()) return;
    if (end > start) {
      fn(start, end);
      pos = end;
    } else {
      // An empty match splits nothing; step over one character.
      pos = start + utf8_char_len(static_cast<unsigned char>(text[start]));
    }
  }
}

}  // namespace synthpert::tokenizer
