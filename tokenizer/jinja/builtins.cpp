#include "tokenizer/jinja/builtins.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>

#include <unicode/uchar.h>

#include "common/error.h"
#include "tokenizer/unicode_case.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer::jinja {
namespace {

using FilterFn = Value (*)(const Value&, Args&, int);
using TestFn = bool (*)(const Value&, const std::vector<Value>&, int);

const std::string& need_string(const Value& v, const char* what, int line) {
  if (!v.is_string()) fail(line, str_cat(what, " needs a string, got ", v.type_name()));
  return v.str();
}

// Iterating a value as a for loop does: lists, dict keys, string characters.
List as_list(const Value& v, int line) {
  if (v.is_list()) return v.list();
  if (v.is_undefined()) return {};
  if (v.is_dict()) {
    List keys;
    for (const auto& kv : v.dict().items) keys.emplace_back(kv.first);
    return keys;
  }
  if (v.is_string()) {
    List chars;
    const std::string& s = v.str();
    for (size_t i = 0; i < s.size();) {
      const size_t n = std::max<size_t>(1, utf8_sequence(s, i));
      chars.emplace_back(s.substr(i, n));
      i += n;
    }
    return chars;
  }
  fail(line, v.type_name() + " is not iterable");
}

// Jinja2's `title` filter, which is not str.title(): a word begins after
// whitespace, '-' or an opening bracket, and takes its first character
// uppercased and the rest lowercased ("they're" stays one word).
std::string title_filter(const std::string& s) {
  const std::u32string u = utf8_to_u32(sanitize_utf8(s));
  auto separates = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_unicode_whitespace(c);
  };
  std::string out;
  for (size_t i = 0, j; i < u.size(); i = j) {
    const bool sep = separates(u[i]);
    for (j = i + 1; j < u.size() && separates(u[j]) == sep;) ++j;
    const std::u32string_view word = std::u32string_view(u).substr(i, j - i);
    out += sep ? u32_to_utf8(word) : unicode_upper(u32_to_utf8(word.substr(0, 1))) + unicode_lower(u32_to_utf8(word.substr(1)));
  }
  return out;
}

size_t char_count(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

Value attribute_of(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (pos <= path.size()) {
    const size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!cur.is_dict()) return Value();
    const Value* f = cur.dict().find(part);
    cur = f ? *f : Value();
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur;
}

// The code point at byte `i` and its length; a stray byte reads as itself.
char32_t code_point_at(const std::string& s, size_t i, size_t* len) {
  char32_t cp = 0;
  *len = utf8_sequence(s, i, &cp);
  if (*len == 0) {
    *len = 1;
    cp = static_cast<unsigned char>(s[i]);
  }
  return cp;
}

// Python's str.isspace: Unicode White_Space plus the separators U+001C..U+001F.
bool py_space(char32_t c) { return is_unicode_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

// Python's \w in a str pattern: letters, numbers and the underscore.
bool py_word_char(char32_t c) {
  if (c == '_') return true;
  const auto cat = U_GET_GC_MASK(static_cast<UChar32>(c));
  return (cat & (U_GC_L_MASK | U_GC_N_MASK)) != 0;
}

// Python's str.split(sep, maxsplit). Without a separator it splits on runs
// of whitespace and drops it at both ends, except after the last split, where
// the rest is kept as it is (trailing whitespace included).
std::vector<std::string> py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep.is_none() || sep.is_undefined()) {
    size_t i = 0, len = 0;
    while (true) {
      while (i < s.size() && py_space(code_point_at(s, i, &len))) i += len;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(s.substr(i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !py_space(code_point_at(s, j, &len))) j += len;
      out.push_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  const std::string& d = sep.str();
  if (d.empty()) throw InputError("chat template: split() separator is empty");
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(d, pos);
    if (hit == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, hit - pos));
    pos = hit + d.size();
  }
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count, int line) {
  std::string out;
  size_t pos = 0;
  int64_t done = 0;
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    for (size_t i = 0; i < s.size();) {
      if (count < 0 || done < count) { out += to; ++done; }
      const size_t n = std::max<size_t>(1, utf8_sequence(s, i));
      out.append(s, i, n);
      i += n;
      check_text_size(out.size(), line);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  for (size_t hit; (count < 0 || done < count) && (hit = s.find(from, pos)) != std::string::npos; ++done) {
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
    check_text_size(out.size(), line);
  }
  out.append(s, pos, std::string::npos);
  return out;
}

bool matches_affix(const std::string& s, const Value& affix, bool prefix, int line) {
  const auto one = [&](const Value& a) {
    const std::string& x = need_string(a, prefix ? "startswith()" : "endswith()", line);
    return x.size() <= s.size() && (prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0);
  };
  if (affix.is_list()) {
    for (const auto& a : affix.list())
      if (one(a)) return true;
    return false;
  }
  return one(affix);
}

// ---- filters ---------------------------------------------------------------

Value f_trim(const Value& v, Args& a, int) {
  const Value chars = a.get(0, "chars");
  return Value(py_strip(v.to_string(), chars.is_string() ? chars.str() : "", true, true));
}
// Lists are read in place: `messages|length` and `messages|last` run once per
// message in common templates, and a copy each time made rendering quadratic.
Value f_length(const Value& v, Args&, int line) {
  if (v.is_string()) return Value(static_cast<int64_t>(char_count(v.str())));
  if (v.is_dict()) return Value(static_cast<int64_t>(v.dict().items.size()));
  if (v.is_list()) return Value(static_cast<int64_t>(v.list().size()));
  return Value(static_cast<int64_t>(as_list(v, line).size()));
}
Value f_tojson(const Value& v, Args& a, int line) {
  // transformers' tojson also takes ensure_ascii, separators and sort_keys;
  // their defaults are what to_json_text does, anything else is refused
  // rather than ignored.
  for (const auto& [name, value] : a.keyword) {
    const bool is_default = (name == "ensure_ascii" || name == "sort_keys") ? !value.truthy()
                            : name == "separators"                          ? value.is_none()
                                                                            : name == "indent";
    if (!is_default) fail(line, "tojson(" + name + "=" + value.repr() + ") is not supported");
  }
  const Value indent = a.get(0, "indent");
  // Each line of the text repeats the indent once per level: a wide one
  // could build any size. Chat templates indent by a few spaces.
  if (indent.is_number() && (indent.as_int() < 0 || indent.as_int() > 64))
    fail(line, str_cat("tojson(indent=", indent.repr(), ") is not supported (0 to 64)"));
  std::string text = to_json_text(v, indent.is_number() ? static_cast<int>(indent.as_int()) : -1);
  check_text_size(text.size(), line);
  return Value(std::move(text));
}
Value f_upper(const Value& v, Args&, int) { return Value(unicode_upper(v.to_string())); }
Value f_lower(const Value& v, Args&, int) { return Value(unicode_lower(v.to_string())); }
Value f_title(const Value& v, Args&, int) { return Value(title_filter(v.to_string())); }
Value f_capitalize(const Value& v, Args&, int) { return Value(unicode_capitalize(v.to_string())); }
Value f_first(const Value& v, Args&, int line) {
  if (v.is_list()) return v.list().empty() ? Value() : v.list().front();
  const List l = as_list(v, line);
  return l.empty() ? Value() : l.front();
}
Value f_last(const Value& v, Args&, int line) {
  if (v.is_list()) return v.list().empty() ? Value() : v.list().back();
  const List l = as_list(v, line);
  return l.empty() ? Value() : l.back();
}
Value f_join(const Value& v, Args& a, int line) {
  const Value sep = a.get(0, "d", Value(""));
  const Value attr = a.get(1, "attribute");
  std::string out;
  bool first = true;
  for (const auto& item : as_list(v, line)) {
    if (!first) out += sep.to_string();
    first = false;
    out += (attr.is_string() ? attribute_of(item, attr.str()) : item).to_string();
    check_text_size(out.size(), line);
  }
  return Value(out);
}
Value f_default(const Value& v, Args& a, int) {
  const Value fallback = a.get(0, "default_value", Value(""));
  const bool boolean = a.get(1, "boolean", Value(false)).truthy();
  if (v.is_undefined() || (boolean && !v.truthy())) return fallback;
  return v;
}
Value f_string(const Value& v, Args&, int) { return Value(v.to_string()); }
// Python's float(str): decimal only, where strtod also reads hex ("0x1A").
std::optional<double> py_float(const std::string& text) {
  const std::string s = py_strip(text, "", true, true);
  if (s.empty() || s.find_first_of("xX") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (!end || *end != '\0') return std::nullopt;
  return d;
}
// Jinja2's int filter: int(s), else int(float(s)), else the default.
Value f_int(const Value& v, Args& a, int) {
  if (v.is_number()) return Value(v.as_int());
  if (v.is_string()) {
    const std::string s = py_strip(v.str(), "", true, true);
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end && *end == '\0' && errno == 0) return Value(static_cast<int64_t>(x));
    const auto d = py_float(s);
    // Within int64 only: NaN and the infinities have no int, and past int64
    // this interpreter has none either.
    if (d && *d > -9.2e18 && *d < 9.2e18) return Value(static_cast<int64_t>(*d));
  }
  return a.get(0, "default", Value(int64_t{0}));
}
Value f_float(const Value& v, Args& a, int) {
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string())
    if (const auto d = py_float(v.str())) return Value(*d);
  return a.get(0, "default", Value(0.0));
}
Value f_list(const Value& v, Args&, int line) { return Value(as_list(v, line)); }
Value f_items(const Value& v, Args&, int line) {
  if (v.is_undefined()) return Value(List{});
  if (!v.is_dict()) fail(line, "items needs a dict, got " + v.type_name());
  List out;
  for (const auto& [k, x] : v.dict().items) out.push_back(Value::tuple({Value(k), x}));
  return Value(out);
}
Value f_reverse(const Value& v, Args&, int line) {
  if (v.is_string()) {
    std::u32string u = utf8_to_u32(v.str());
    std::reverse(u.begin(), u.end());
    return Value(u32_to_utf8(u));
  }
  List l = as_list(v, line);
  std::reverse(l.begin(), l.end());
  return Value(l);
}
Value f_replace(const Value& v, Args& a, int line) {
  const Value count = a.get(2, "count");
  return Value(py_replace(v.to_string(), need_string(a.get(0, "old"), "replace", line),
                          need_string(a.get(1, "new"), "replace", line), count.is_number() ? count.as_int() : -1,
                          line));
}
Value select_by_attr(const Value& v, Args& a, int line, bool keep) {
  const std::string attr = need_string(a.get(0, "attr"), "selectattr", line);
  const Value test = a.get(1, "test");
  std::vector<Value> test_args(a.positional.begin() + std::min<size_t>(2, a.positional.size()), a.positional.end());
  List out;
  for (const auto& item : as_list(v, line)) {
    const Value x = attribute_of(item, attr);
    const bool ok = test.is_string() ? apply_test(test.str(), x, test_args, line) : x.truthy();
    if (ok == keep) out.push_back(item);
  }
  return Value(out);
}
Value f_selectattr(const Value& v, Args& a, int line) { return select_by_attr(v, a, line, true); }
Value f_rejectattr(const Value& v, Args& a, int line) { return select_by_attr(v, a, line, false); }
Value f_map(const Value& v, Args& a, int line) {
  List out;
  const Value attr = a.get(99, "attribute");
  for (const auto& item : as_list(v, line)) {
    if (attr.is_string()) {
      Value x = attribute_of(item, attr.str());
      out.push_back(x.is_undefined() ? a.get(99, "default") : x);
    } else {
      const std::string& filter = need_string(a.get(0, "filter"), "map", line);
      if (!has_filter(filter)) fail(line, "unsupported filter '" + filter + "' in map");
      Args rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      out.push_back(apply_filter(filter, item, rest, line));
    }
  }
  return Value(out);
}
Value f_safe(const Value& v, Args&, int) { return v; }
// markupsafe's escape, which Jinja2's e/escape are (autoescape stays off, as
// transformers renders: only an explicit filter escapes).
Value f_escape(const Value& v, Args&, int) {
  std::string out;
  for (const char c : v.to_string()) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value(out);
}
Value f_abs(const Value& v, Args&, int line) {
  if (v.kind() == Value::Kind::Float) return Value(std::fabs(v.as_double()));
  if (v.is_number()) return Value(static_cast<int64_t>(std::llabs(v.as_int())));
  fail(line, "abs needs a number");
}
// Jinja2's round: "common" is Python's round() (half to even on the exact
// binary value; an int stays an int), "floor"/"ceil" give a float.
Value f_round(const Value& v, Args& a, int line) {
  if (!v.is_number()) fail(line, "round needs a number");
  const int64_t prec = a.get(0, "precision", Value(int64_t{0})).as_int();
  const std::string method = a.get(1, "method", Value("common")).to_string();
  if (method != "common" && method != "floor" && method != "ceil")
    fail(line, "round's method must be 'common', 'ceil' or 'floor', got '" + method + "'");
  if (method != "common") {
    const double scale = std::pow(10.0, static_cast<double>(prec));
    const double x = v.as_double() * scale;
    return Value((method == "floor" ? std::floor(x) : std::ceil(x)) / scale);
  }
  if (prec < 0) {
    // To a multiple of 10^-prec, ties to even.
    const double unit = std::pow(10.0, static_cast<double>(-prec));
    const double r = std::nearbyint(v.as_double() / unit) * unit;
    return v.kind() == Value::Kind::Float ? Value(r) : Value(static_cast<int64_t>(r));
  }
  if (v.kind() != Value::Kind::Float) return Value(v.as_int());
  // printf rounds the exact binary value to nearest, ties to even: Python's
  // rule (round(2.675, 2) is 2.67, round(2.5) is 2.0).
  const int digits = static_cast<int>(std::min<int64_t>(prec, 340));
  const int n = std::snprintf(nullptr, 0, "%.*f", digits, v.as_double());
  std::string text(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(text.data(), text.size(), "%.*f", digits, v.as_double());
  return Value(std::strtod(text.c_str(), nullptr));
}
Value f_indent(const Value& v, Args& a, int at_line) {
  const Value width = a.get(0, "width", Value(int64_t{4}));
  const bool first = a.get(1, "first", Value(false)).truthy();
  const bool blank = a.get(2, "blank", Value(false)).truthy();
  if (!width.is_string()) check_text_size(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), at_line);
  // Python's " " * n: a negative width is no indent.
  const std::string pad =
      width.is_string() ? width.str() : std::string(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), ' ');
  const std::string s = v.to_string();
  std::string out;
  size_t pos = 0;
  bool first_line = true;
  while (pos <= s.size()) {
    const size_t nl = s.find('\n', pos);
    const std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    // Jinja2 indents the first line whenever `first` is set, even empty.
    if (first_line ? first : (blank || !line.empty())) out += pad;
    out += line;
    check_text_size(out.size(), at_line);
    if (nl == std::string::npos) break;
    out += '\n';
    pos = nl + 1;
    first_line = false;
  }
  return Value(out);
}
// Jinja2 compares strings case-insensitively in sort, unique and dictsort
// unless case_sensitive=true: the key is the lowered string.
Value sort_key(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value(unicode_lower(v.str())) : v;
}
Value f_unique(const Value& v, Args& a, int line) {
  const bool case_sensitive = a.get(0, "case_sensitive", Value(false)).truthy();
  const Value attr = a.get(1, "attribute");
  List out, keys;
  for (const auto& item : as_list(v, line)) {
    const Value key = sort_key(attr.is_string() ? attribute_of(item, attr.str()) : item, case_sensitive);
    bool seen = false;
    for (const auto& k : keys) seen = seen || values_equal(k, key);
    if (seen) continue;
    keys.push_back(key);
    out.push_back(item);
  }
  return Value(out);
}
Value f_sort(const Value& v, Args& a, int line) {
  List l = as_list(v, line);
  const bool reverse = a.get(0, "reverse", Value(false)).truthy();
  const bool case_sensitive = a.get(1, "case_sensitive", Value(false)).truthy();
  const Value attr = a.get(2, "attribute");
  std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
    const Value kx = sort_key(attr.is_string() ? attribute_of(x, attr.str()) : x, case_sensitive);
    const Value ky = sort_key(attr.is_string() ? attribute_of(y, attr.str()) : y, case_sensitive);
    return reverse ? value_less(ky, kx) : value_less(kx, ky);
  });
  return Value(l);
}
Value f_dictsort(const Value& v, Args& a, int line) {
  const bool case_sensitive = a.get(0, "case_sensitive", Value(false)).truthy();
  const Value by = a.get(1, "by", Value("key"));
  const bool reverse = a.get(2, "reverse", Value(false)).truthy();
  if (!by.is_string() || (by.str() != "key" && by.str() != "value"))
    fail(line, "dictsort: by must be 'key' or 'value'");
  const size_t part = by.str() == "key" ? 0 : 1;
  Value items = f_items(v, *std::make_unique<Args>(), line);
  List l = items.list();
  std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
    const Value kx = sort_key(x.list()[part], case_sensitive), ky = sort_key(y.list()[part], case_sensitive);
    return reverse ? value_less(ky, kx) : value_less(kx, ky);
  });
  return Value(l);
}
// Jinja2 counts the matches of \w+.
Value f_wordcount(const Value& v, Args&, int) {
  const std::string s = v.to_string();
  int64_t words = 0;
  bool in_word = false;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const bool w = py_word_char(code_point_at(s, i, &len));
    words += w && !in_word;
    in_word = w;
  }
  return Value(words);
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> m = {
      {"trim", f_trim}, {"length", f_length}, {"count", f_length}, {"tojson", f_tojson}, {"upper", f_upper},
      {"lower", f_lower}, {"title", f_title}, {"capitalize", f_capitalize}, {"first", f_first}, {"last", f_last},
      {"join", f_join}, {"default", f_default}, {"d", f_default}, {"string", f_string}, {"int", f_int},
      {"float", f_float}, {"list", f_list}, {"items", f_items}, {"reverse", f_reverse}, {"replace", f_replace},
      {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr}, {"map", f_map}, {"safe", f_safe}, {"e", f_escape},
      {"escape", f_escape}, {"abs", f_abs}, {"round", f_round}, {"indent", f_indent}, {"unique", f_unique},
      {"sort", f_sort}, {"dictsort", f_dictsort}, {"wordcount", f_wordcount}};
  return m;
}

// ---- tests -----------------------------------------------------------------

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> m = {
      {"defined", [](const Value& v, const std::vector<Value>&, int) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const std::vector<Value>&, int) { return v.is_undefined(); }},
      {"none", [](const Value& v, const std::vector<Value>&, int) { return v.is_none(); }},
      {"string", [](const Value& v, const std::vector<Value>&, int) { return v.is_string(); }},
      // Python: a bool is a Number.
      {"number", [](const Value& v, const std::vector<Value>&, int) { return v.is_number(); }},
      {"integer", [](const Value& v, const std::vector<Value>&, int) { return v.kind() == Value::Kind::Int; }},
      {"float", [](const Value& v, const std::vector<Value>&, int) { return v.kind() == Value::Kind::Float; }},
      {"boolean", [](const Value& v, const std::vector<Value>&, int) { return v.is_bool(); }},
      {"true", [](const Value& v, const std::vector<Value>&, int) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v, const std::vector<Value>&, int) { return v.is_bool() && !v.as_bool(); }},
      {"mapping", [](const Value& v, const std::vector<Value>&, int) { return v.is_dict(); }},
      {"sequence", [](const Value& v, const std::vector<Value>&, int) { return v.is_list() || v.is_string() || v.is_dict(); }},
      {"iterable", [](const Value& v, const std::vector<Value>&, int) { return v.is_list() || v.is_string() || v.is_dict(); }},
      {"callable", [](const Value& v, const std::vector<Value>&, int) { return v.is_function(); }},
      {"even", [](const Value& v, const std::vector<Value>&, int l) { if (!v.is_number()) fail(l, "even needs a number"); return v.as_int() % 2 == 0; }},
      {"odd", [](const Value& v, const std::vector<Value>&, int l) { if (!v.is_number()) fail(l, "odd needs a number"); return v.as_int() % 2 != 0; }},
      {"divisibleby", [](const Value& v, const std::vector<Value>& a, int l) {
         if (a.empty() || !a[0].is_number() || a[0].as_int() == 0) fail(l, "divisibleby needs a non-zero number");
         return v.as_int() % a[0].as_int() == 0; }},
      {"equalto", [](const Value& v, const std::vector<Value>& a, int l) { if (a.empty()) fail(l, "equalto needs an argument"); return values_equal(v, a[0]); }},
      {"eq", [](const Value& v, const std::vector<Value>& a, int l) { if (a.empty()) fail(l, "eq needs an argument"); return values_equal(v, a[0]); }},
      {"ne", [](const Value& v, const std::vector<Value>& a, int l) { if (a.empty()) fail(l, "ne needs an argument"); return !values_equal(v, a[0]); }},
      {"sameas", [](const Value& v, const std::vector<Value>& a, int l) { if (a.empty()) fail(l, "sameas needs an argument"); return values_equal(v, a[0]) && v.kind() == a[0].kind(); }},
      {"lower", [](const Value& v, const std::vector<Value>&, int) { return v.is_string() && unicode_is_lower(v.str()); }},
      {"upper", [](const Value& v, const std::vector<Value>&, int) { return v.is_string() && unicode_is_upper(v.str()); }},
      {"in", [](const Value& v, const std::vector<Value>& a, int l) {
         if (a.empty()) fail(l, "in needs an argument");
         if (a[0].is_string()) return v.is_string() && a[0].str().find(v.str()) != std::string::npos;
         if (a[0].is_list()) {
           for (const auto& x : a[0].list()) if (values_equal(x, v)) return true;
           return false;
         }
         for (const auto& x : as_list(a[0], l)) if (values_equal(x, v)) return true;
         return false; }},
  };
  return m;
}

template <typename M>
std::string names_of(const M& m) {
  std::string out;
  for (const auto& kv : m) out += (out.empty() ? "" : ", ") + kv.first;
  return out;
}

}  // namespace

std::string py_strip(const std::string& s, const std::string& chars, bool left, bool right) {
  const std::u32string u = utf8_to_u32(s);
  const std::u32string set = utf8_to_u32(chars);
  const auto strip_me = [&](char32_t c) {
    return chars.empty() ? (is_unicode_whitespace(c) || (c >= 0x1C && c <= 0x1F)) : set.find(c) != std::u32string::npos;
  };
  size_t b = 0, e = u.size();
  if (left) while (b < e && strip_me(u[b])) ++b;
  if (right) while (e > b && strip_me(u[e - 1])) --e;
  return u32_to_utf8(std::u32string_view(u).substr(b, e - b));
}

bool has_filter(const std::string& name) { return filters().count(name) > 0; }
bool has_test(const std::string& name) { return tests().count(name) > 0; }
std::string filter_names() { return names_of(filters()); }
std::string test_names() { return names_of(tests()); }

Value apply_filter(const std::string& name, const Value& v, Args& args, int line) {
  const auto it = filters().find(name);
  if (it == filters().end()) fail(line, "unsupported filter '" + name + "'");
  return it->second(v, args, line);
}

bool apply_test(const std::string& name, const Value& v, const std::vector<Value>& args, int line) {
  const auto it = tests().find(name);
  if (it == tests().end()) fail(line, "unsupported test '" + name + "'");
  return it->second(v, args, line);
}

Value call_method(const Value& obj, const std::string& name, Args& a, int line) {
  if (obj.is_string()) {
    const std::string& s = obj.str();
    const auto chars = [&] { const Value c = a.get(0, "chars"); return c.is_string() ? c.str() : std::string(); };
    if (name == "strip") return Value(py_strip(s, chars(), true, true));
    if (name == "lstrip") return Value(py_strip(s, chars(), true, false));
    if (name == "rstrip") return Value(py_strip(s, chars(), false, true));
    if (name == "split") {
      const Value max = a.get(1, "maxsplit");
      List out;
      for (auto& p : py_split(s, a.get(0, "sep", Value::none()), max.is_number() ? max.as_int() : -1)) out.emplace_back(std::move(p));
      return Value(out);
    }
    if (name == "startswith") return Value(matches_affix(s, a.get(0, "prefix"), true, line));
    if (name == "endswith") return Value(matches_affix(s, a.get(0, "suffix"), false, line));
    if (name == "replace") {
      const Value count = a.get(2, "count");
      return Value(py_replace(s, need_string(a.get(0, "old"), "replace()", line),
                              need_string(a.get(1, "new"), "replace()", line), count.is_number() ? count.as_int() : -1,
                              line));
    }
    if (name == "upper") return Value(unicode_upper(s));
    if (name == "lower") return Value(unicode_lower(s));
    if (name == "title") return Value(unicode_title(s));
    if (name == "capitalize") return Value(unicode_capitalize(s));
    if (name == "find") {
      const size_t p = s.find(need_string(a.get(0, "sub"), "find()", line));
      return Value(p == std::string::npos ? int64_t{-1} : static_cast<int64_t>(char_count(s.substr(0, p))));
    }
    if (name == "count") {
      const std::string& sub = need_string(a.get(0, "sub"), "count()", line);
      int64_t n = 0;
      if (sub.empty()) return Value(static_cast<int64_t>(char_count(s) + 1));
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value(n);
    }
    if (name == "join") {
      std::string out;
      bool first = true;
      for (const auto& item : as_list(a.get(0, "iterable"), line)) {
        if (!first) out += s;
        first = false;
        out += need_string(item, "join()", line);
        check_text_size(out.size(), line);
      }
      return Value(out);
    }
    if (name == "isdigit") return Value(!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }));
    if (name == "isspace") return Value(!s.empty() && py_strip(s, "", true, true).empty());
    fail(line, "unsupported method '" + name + "' on string");
  }
  if (obj.is_dict()) {
    const Dict& d = obj.dict();
    if (name == "get") {
      const Value* f = d.find(need_string(a.get(0, "key"), "get()", line));
      return f ? *f : a.get(1, "default", Value::none());
    }
    if (name == "items") return f_items(obj, a, line);
    if (name == "keys") {
      List out;
      for (const auto& kv : d.items) out.emplace_back(kv.first);
      return Value(out);
    }
    if (name == "values") {
      List out;
      for (const auto& kv : d.items) out.push_back(kv.second);
      return Value(out);
    }
    fail(line, "unsupported method '" + name + "' on dict");
  }
  if (obj.is_undefined()) fail(line, "'" + name + "' called on an undefined value");
  fail(line, "unsupported method '" + name + "' on " + obj.type_name());
}

}  // namespace synthpert::tokenizer::jinja
