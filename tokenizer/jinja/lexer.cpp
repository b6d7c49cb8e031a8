#include "tokenizer/jinja/lexer.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer::jinja {
namespace {

struct Segment {
  enum class Kind { Text, Output, Statement, Comment } kind;
  std::string body;  // text, or the tag's inside without the markers
  bool strip_before = false, strip_after = false;  // '-' markers
  bool keep_before = false;                         // '+' (disables lstrip_blocks)
  int line = 1;
  bool keep_after = false;  // '+' before the end marker (disables trim_blocks)
};

int line_at(const std::string& s, size_t pos, size_t from, int line) {
  for (size_t i = from; i < pos && i < s.size(); ++i)
    if (s[i] == '\n') ++line;
  return line;
}

// Finds the end marker of a tag opened at `pos`, skipping string literals
// and, as Jinja does, any marker inside open brackets: `{{ {'a': {'b': 1}} }}`
// ends at its last "}}". Brackets that never close end the tag at its first
// marker, so the parser names the missing bracket.
size_t find_tag_end(const std::string& s, size_t pos, const char* close, int line) {
  int depth = 0;
  size_t first = std::string::npos;
  for (size_t i = pos; i + 1 < s.size(); ++i) {
    const char c = s[i];
    if (c == '\'' || c == '"') {
      // A backslash escapes the character after it, itself included: 'a\\'
      // ends at its second quote.
      size_t e = i + 1;
      while (e < s.size() && s[e] != c) e += s[e] == '\\' ? 2 : 1;
      SP_CHECK_INPUT(e < s.size(), "chat template line ", line, ": unterminated string literal");
      i = e;
      continue;
    }
    if (c == close[0] && s[i + 1] == close[1]) {
      if (depth == 0) return i;
      if (first == std::string::npos) first = i;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    // An unmatched closer is the parser's error to report, not a reason to
    // look past the tag's end.
    if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
  }
  if (first != std::string::npos) return first;
  throw InputError(str_cat("chat template line ", line, ": tag is not closed with '", close, "'"));
}

std::vector<Segment> split_segments(const std::string& s) {
  std::vector<Segment> segs;
  size_t pos = 0;
  int line = 1;
  size_t line_pos = 0;
  while (pos < s.size()) {
    size_t open = pos;
    while (true) {
      open = s.find('{', open);
      if (open == std::string::npos || open + 1 >= s.size()) { open = std::string::npos; break; }
      const char n = s[open + 1];
      if (n == '{' || n == '%' || n == '#') break;
      ++open;
    }
    if (open == std::string::npos) {
      segs.push_back({Segment::Kind::Text, s.substr(pos), false, false, false, line});
      break;
    }
    if (open > pos) segs.push_back({Segment::Kind::Text, s.substr(pos, open - pos), false, false, false, line});
    line = line_at(s, open, line_pos, line);
    line_pos = open;
    const char n = s[open + 1];
    Segment seg{n == '{' ? Segment::Kind::Output : n == '%' ? Segment::Kind::Statement : Segment::Kind::Comment, "", false, false, false, line};
    size_t body = open + 2;
    if (body < s.size() && s[body] == '-') { seg.strip_before = true; ++body; }
    else if (body < s.size() && s[body] == '+') { seg.keep_before = true; ++body; }
    const char* close = n == '{' ? "}}" : n == '%' ? "%}" : "#}";
    size_t end;
    if (seg.kind == Segment::Kind::Comment) {
      end = s.find("#}", body);
      SP_CHECK_INPUT(end != std::string::npos, "chat template line ", line, ": comment is not closed with '#}'");
    } else {
      end = find_tag_end(s, body, close, line);
    }
    size_t body_end = end;
    if (body_end > body && (s[body_end - 1] == '-' || s[body_end - 1] == '+')) {
      seg.strip_after = s[body_end - 1] == '-';
      seg.keep_after = s[body_end - 1] == '+';
      --body_end;
    }
    seg.body = s.substr(body, body_end - body);
    segs.push_back(std::move(seg));
    pos = end + 2;
  }
  return segs;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Applies "-" markers, lstrip_blocks and trim_blocks to the text segments.
// Every decision looks at the original text, as Jinja's lexer does: spaces
// before a block tag are stripped when a newline precedes them in the source
// even if trim_blocks removes that newline.
void apply_whitespace_rules(std::vector<Segment>& segs) {
  std::vector<size_t> cut_front(segs.size(), 0), cut_back(segs.size(), 0);
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& t = segs[i];
    if (t.kind == Segment::Kind::Text) continue;
    const bool block = t.kind != Segment::Kind::Output;
    if (i > 0 && segs[i - 1].kind == Segment::Kind::Text) {
      const std::string& prev = segs[i - 1].body;
      size_t k = prev.size();
      if (t.strip_before) {
        while (k > 0 && is_space(prev[k - 1])) --k;
      } else if (block && !t.keep_before) {
        // lstrip_blocks: drop spaces/tabs between the line start and the tag.
        while (k > 0 && (prev[k - 1] == ' ' || prev[k - 1] == '\t')) --k;
        if (!(k == 0 ? i == 1 : prev[k - 1] == '\n')) k = prev.size();
      }
      cut_back[i - 1] = prev.size() - k;
    }
    if (i + 1 < segs.size() && segs[i + 1].kind == Segment::Kind::Text) {
      const std::string& next = segs[i + 1].body;
      size_t k = 0;
      if (t.strip_after) {
        while (k < next.size() && is_space(next[k])) ++k;
      } else if (block && !t.keep_after && !next.empty() && next[0] == '\n') {
        k = 1;  // trim_blocks
      }
      cut_front[i + 1] = k;
    }
  }
  for (size_t i = 0; i < segs.size(); ++i) {
    if (segs[i].kind != Segment::Kind::Text) continue;
    std::string& b = segs[i].body;
    const size_t front = std::min(cut_front[i], b.size());
    const size_t back = std::min(cut_back[i], b.size() - front);
    b = b.substr(front, b.size() - front - back);
  }
}

void lex_tag(const Segment& seg, std::vector<Token>& out) {
  const std::string& s = seg.body;
  int line = seg.line;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\n') ++line;
    if (is_space(c)) { ++i; continue; }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::Type::Name, s.substr(i, j - i), line});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      bool is_float = false;
      if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        is_float = true;
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      // Exponent: 1e20, 2.5E-3.
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
          is_float = true;
          j = k;
          while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        }
      }
      std::string num;
      for (size_t k = i; k < j; ++k)
        if (s[k] != '_') num += s[k];
      out.push_back({is_float ? Token::Type::Float : Token::Type::Int, num, line});
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string lit;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) {
          if (s[j] == '\n') ++line;
          lit += s[j];
          continue;
        }
        const char e = s[++j];
        // Python's string escapes, as Jinja2 decodes literals.
        auto hex_escape = [&](size_t digits) {
          char32_t cp = 0;
          size_t k = 0;
          for (; k < digits && j + 1 + k < s.size() && std::isxdigit(static_cast<unsigned char>(s[j + 1 + k])); ++k)
            cp = cp * 16 + static_cast<char32_t>(std::stoi(std::string(1, s[j + 1 + k]), nullptr, 16));
          SP_CHECK_INPUT(k == digits && cp <= 0x10FFFF, "chat template line ", line, ": bad \\", e,
                         " escape in a string literal");
          append_utf8(lit, cp);
          j += digits;
        };
        switch (e) {
          case 'n': lit += '\n'; break;
          case 't': lit += '\t'; break;
          case 'r': lit += '\r'; break;
          case 'a': lit += '\a'; break;
          case 'b': lit += '\b'; break;
          case 'f': lit += '\f'; break;
          case 'v': lit += '\v'; break;
          case '\n': ++line; break;  // a backslash before a newline joins the lines
          case '\\': lit += '\\'; break;
          case '\'': lit += '\''; break;
          case '"': lit += '"'; break;
          case 'x': hex_escape(2); break;
          case 'u': hex_escape(4); break;
          case 'U': hex_escape(8); break;
          default:
            if (e >= '0' && e <= '7') {  // up to three octal digits
              char32_t cp = static_cast<char32_t>(e - '0');
              for (int k = 0; k < 2 && j + 1 < s.size() && s[j + 1] >= '0' && s[j + 1] <= '7'; ++k)
                cp = cp * 8 + static_cast<char32_t>(s[++j] - '0');
              append_utf8(lit, cp);
            } else {
              lit += '\\';  // Python keeps unknown escapes as written
              lit += e;
            }
        }
      }
      SP_CHECK_INPUT(j < s.size(), "chat template line ", line, ": unterminated string literal");
      out.push_back({Token::Type::String, lit, line});
      i = j + 1;
      continue;
    }
    static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                                 "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
    bool matched = false;
    for (const char* op : kOps) {
      const size_t n = std::char_traits<char>::length(op);
      if (s.compare(i, n, op) == 0) {
        out.push_back({Token::Type::Op, op, line});
        i += n;
        matched = true;
        break;
      }
    }
    SP_CHECK_INPUT(matched, "chat template line ", line, ": unexpected character '", std::string(1, c), "'");
  }
}

}  // namespace

std::vector<Token> lex(const std::string& source) {
  // Jinja2 reads \r\n and \r as \n before anything else (a template saved on
  // Windows), so trim_blocks and the final-newline rule see them.
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] != '\r') src += source[i];
    else if (i + 1 >= source.size() || source[i + 1] != '\n') src += '\n';
  }
  // Jinja's keep_trailing_newline=False: one final newline is dropped.
  if (!src.empty() && src.back() == '\n') src.pop_back();
  std::vector<Segment> segs = split_segments(src);
  apply_whitespace_rules(segs);
  std::vector<Token> out;
  for (const auto& seg : segs) {
    switch (seg.kind) {
      case Segment::Kind::Text:
        if (!seg.body.empty()) out.push_back({Token::Type::Text, seg.body, seg.line});
        break;
      case Segment::Kind::Comment: break;
      case Segment::Kind::Output:
      case Segment::Kind::Statement:
        out.push_back({seg.kind == Segment::Kind::Output ? Token::Type::OpenOutput : Token::Type::OpenStatement, "", seg.line});
        lex_tag(seg, out);
        out.push_back({Token::Type::Close, "", seg.line});
        break;
    }
  }
  out.push_back({Token::Type::End, "", 0});
  return out;
}

}  // namespace synthpert::tokenizer::jinja
