#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <vector>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

// The White_Space code points, as a character-class body.
constexpr const char* kWhiteSpaceBody =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

namespace {

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
  bool in_class = false;
  // Where in `out` the last complete atom (character, escape, class or
  // group) starts, npos when a quantifier there would have nothing to
  // repeat; and where the open groups start.
  size_t atom = std::string::npos;
  std::vector<size_t> groups;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (!in_class) atom = out.size();
      ++i;
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceBody) : "[" + std::string(kWhiteSpaceBody) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceBody) + "]";
      } else {
        // \S inside a class has no flat equivalent; PCRE2's own \S differs only at U+180E.
        out += c;
        out += e;
        // \p{..}, \P{..}, \x{..}, \o{..} are one escape, not an interval.
        const size_t close = p.find('}', i + 1);
        if ((e == 'p' || e == 'P' || e == 'x' || e == 'o') && i + 1 < p.size() && p[i + 1] == '{' &&
            close != std::string::npos) {
          out.append(p, i + 1, close - i);
          i = close;
        }
      }
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
        const size_t end = p.find(":]", i + 2);
        if (end != std::string::npos) {
          out.append(p, i, end + 2 - i);
          i = end + 1;
          continue;
        }
      }
      if (c == ']') in_class = false;
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      atom = out.size();
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
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
