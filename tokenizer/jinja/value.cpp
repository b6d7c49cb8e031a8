#include "tokenizer/jinja/value.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "common/error.h"

namespace synthpert::tokenizer::jinja {

[[noreturn]] void fail(int line, const std::string& msg) {
  throw InputError(str_cat("chat template line ", line, ": ", msg));
}

void check_text_size(size_t bytes, int line) {
  if (bytes > kMaxTextBytes) fail(line, str_cat("the template builds a string of more than ", kMaxTextBytes, " bytes"));
}

namespace {

// Python's repr() of a str: single quotes unless the text has ' and no ".
std::string python_str_repr(const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<unsigned char>(q)) { out += '\\'; out += q; }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += static_cast<char>(c);
  }
  out += q;
  return out;
}

void json_escape(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

// Printing a list or dict that holds itself many times over (a template can
// nest one list in a new one in a loop) could build any size: stop at the
// limit of a built string.
void check_printed_size(const std::string& out) {
  if (out.size() > kMaxTextBytes)
    throw InputError(str_cat("chat template: a value prints as more than ", kMaxTextBytes, " bytes"));
}

void check_value_depth(int depth) {
  if (depth > kMaxValueDepth)
    throw InputError(
        str_cat("chat template: a value nests lists or dicts more than ", kMaxValueDepth, " deep, or holds itself"));
}

void dump_json(const Value& v, int indent, int depth, std::string& out) {
  check_value_depth(depth);
  const auto newline = [&](int d) {
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.as_int()); return;
    case Value::Kind::Float: out += python_float_repr(v.as_double()); return;
    case Value::Kind::String: json_escape(v.str(), out); return;
    case Value::Kind::Function: throw InputError("chat template: tojson cannot serialize a function");
    case Value::Kind::List: {
      const List& l = v.list();
      if (l.empty()) { out += "[]"; return; }
      out += '[';
      for (size_t i = 0; i < l.size(); ++i) {
        if (i) out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(depth + 1);
        dump_json(l[i], indent, depth + 1, out);
        check_printed_size(out);
      }
      if (indent >= 0) newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      const auto& items = v.dict().items;
      if (items.empty()) { out += "{}"; return; }
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(depth + 1);
        json_escape(items[i].first, out);
        out += ": ";
        dump_json(items[i].second, indent, depth + 1, out);
        check_printed_size(out);
      }
      if (indent >= 0) newline(depth);
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[32];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s(buf);
  const size_t e = s.find('e');
  if (e != std::string::npos) {
    // Python writes exponents with at least two digits and no leading zeros beyond that.
    std::string mant = s.substr(0, e), ex = s.substr(e + 1);
    const char sign = ex[0] == '-' ? '-' : '+';
    if (ex[0] == '-' || ex[0] == '+') ex = ex.substr(1);
    while (ex.size() > 2 && ex[0] == '0') ex = ex.substr(1);
    if (ex.size() < 2) ex = "0" + ex;
    const int exp10 = std::atoi(ex.c_str()) * (sign == '-' ? -1 : 1);
    // Python uses positional notation for 1e-4 <= |d| < 1e16.
    if (exp10 >= -4 && exp10 < 16) {
      std::snprintf(buf, sizeof buf, "%.17f", d);
      std::string fixed(buf);
      for (int prec = 0; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*f", prec, d);
        if (std::strtod(buf, nullptr) == d) { fixed = buf; break; }
      }
      if (fixed.find('.') == std::string::npos) fixed += ".0";
      return fixed;
    }
    return mant + "e" + sign + ex;
  }
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

Value Value::function(std::string name, Function f) {
  Value v;
  v.kind_ = Kind::Function;
  v.f_ = std::make_shared<std::pair<std::string, Function>>(std::move(name), std::move(f));
  return v;
}

const std::string& Value::function_name() const { return f_->first; }
Value Value::call(Args& args) const { return f_->second(args); }

namespace {

template <typename Json>
Value value_from_json(const Json& j, int depth) {
  check_value_depth(depth);
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      SP_CHECK_INPUT(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "the integer ", u,
                     " in the template's data is past the range templates hold (int64)");
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value(j.template get<double>());
    case nlohmann::json::value_t::string: return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      List l;
      for (const auto& e : j) l.push_back(value_from_json(e, depth + 1));
      return Value(std::move(l));
    }
    case nlohmann::json::value_t::object: {
      auto d = make_dict();
      for (auto it = j.begin(); it != j.end(); ++it) d->set(it.key(), value_from_json(it.value(), depth + 1));
      return Value(d);
    }
    default: return Value();
  }
}

}  // namespace

Value Value::from_json(const nlohmann::json& j) { return value_from_json(j, 0); }
Value Value::from_json(const nlohmann::ordered_json& j) { return value_from_json(j, 0); }

Value::~Value() {
  if (!(l_ && l_.use_count() == 1) && !(d_map_ && d_map_.use_count() == 1)) return;
  std::vector<Value> pending;
  release_items(pending);
  while (!pending.empty()) {
    Value v = std::move(pending.back());
    pending.pop_back();
    v.release_items(pending);  // v's own end then frees empty containers only
  }
}

void Value::release_items(std::vector<Value>& out) {
  if (l_ && l_.use_count() == 1) {
    for (auto& item : *l_) out.push_back(std::move(item));
    l_->clear();
  }
  if (d_map_ && d_map_.use_count() == 1) {
    for (auto& item : d_map_->items) out.push_back(std::move(item.second));
    d_map_->items.clear();
  }
}

nlohmann::json Value::to_json() const {
  return nlohmann::json::parse(to_json_text(*this, -1));
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return b_;
    case Kind::Int: return i_ != 0;
    case Kind::Float: return d_ != 0.0;
    case Kind::String: return !s_->empty();
    case Kind::List: return !l_->empty();
    case Kind::Dict: return !d_map_->items.empty();
    case Kind::Function: return true;
  }
  return false;
}

std::string Value::to_string() const {
  switch (kind_) {
    case Kind::Undefined: return "";
    case Kind::String: return *s_;
    default: return repr();
  }
}

std::string Value::repr() const { return repr_at(0); }

std::string Value::repr_at(int depth) const {
  check_value_depth(depth);
  switch (kind_) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return b_ ? "True" : "False";
    case Kind::Int: return std::to_string(i_);
    case Kind::Float: return python_float_repr(d_);
    case Kind::String: return python_str_repr(*s_);
    case Kind::List: {
      std::string out = tuple_ ? "(" : "[";
      for (size_t i = 0; i < l_->size(); ++i) {
        out += (i ? ", " : "") + (*l_)[i].repr_at(depth + 1);
        check_printed_size(out);
      }
      if (tuple_) return out + (l_->size() == 1 ? ",)" : ")");
      return out + "]";
    }
    case Kind::Dict: {
      std::string out = "{";
      for (size_t i = 0; i < d_map_->items.size(); ++i) {
        out += (i ? ", " : "") + python_str_repr(d_map_->items[i].first) + ": " +
               d_map_->items[i].second.repr_at(depth + 1);
        check_printed_size(out);
      }
      return out + "}";
    }
    case Kind::Function: return "<function " + f_->first + ">";
  }
  return "";
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::Undefined: return "undefined";
    case Kind::None: return "none";
    case Kind::Bool: return "boolean";
    case Kind::Int: return "integer";
    case Kind::Float: return "float";
    case Kind::String: return "string";
    case Kind::List: return tuple_ ? "tuple" : "list";
    case Kind::Dict: return "dict";
    case Kind::Function: return "function";
  }
  return "?";
}

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  for (auto& [k, old] : items)
    if (k == key) {
      old = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

std::shared_ptr<Dict> make_dict() { return std::make_shared<Dict>(); }

Value Args::get(size_t i, const std::string& name, Value fallback) const {
  if (i < positional.size()) return positional[i];
  for (const auto& [k, v] : keyword)
    if (k == name) return v;
  return fallback;
}

namespace {

bool equal_at(const Value& a, const Value& b, int depth) {
  check_value_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::Float || b.kind() == Value::Kind::Float) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String: return a.str() == b.str();
    case Value::Kind::List: {
      if (a.is_tuple() != b.is_tuple() || a.list().size() != b.list().size()) return false;
      for (size_t i = 0; i < a.list().size(); ++i)
        if (!equal_at(a.list()[i], b.list()[i], depth + 1)) return false;
      return true;
    }
    case Value::Kind::Dict: {
      const auto& x = a.dict().items;
      const auto& y = b.dict();
      if (x.size() != y.items.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* o = y.find(k);
        if (!o || !equal_at(v, *o, depth + 1)) return false;
      }
      return true;
    }
    default: return false;
  }
}

bool less_at(const Value& a, const Value& b, int depth) {
  check_value_depth(depth);
  if (a.is_number() && b.is_number()) return a.as_double() < b.as_double();
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_list() && b.is_list()) {
    const auto& x = a.list();
    const auto& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (less_at(x[i], y[i], depth + 1)) return true;
      if (less_at(y[i], x[i], depth + 1)) return false;
    }
    return x.size() < y.size();
  }
  throw InputError("chat template: cannot order " + a.type_name() + " and " + b.type_name());
}

}  // namespace

bool values_equal(const Value& a, const Value& b) { return equal_at(a, b, 0); }
bool value_less(const Value& a, const Value& b) { return less_at(a, b, 0); }

std::string to_json_text(const Value& v, int indent) {
  std::string out;
  dump_json(v, indent, 0, out);
  return out;
}

}  // namespace synthpert::tokenizer::jinja
