// Values of the chat-template interpreter, with Python's semantics where
// templates can see them (str(), repr(), truthiness, ==, ordering), because
// transformers renders chat templates with Python's Jinja2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace synthpert::tokenizer::jinja {

// Everything a template builds (the rendered text, each string and list)
// stays below these sizes, and a render runs at most so many loop
// iterations: chat prompts are kilobytes, and a template that doubles a
// string in a loop, or nests loops over big ranges, must end in an error,
// not take all memory or time. range() is bounded as in Jinja2's sandbox,
// under which transformers renders chat templates.
inline constexpr size_t kMaxTextBytes = size_t{1} << 24;  // 16 MiB
inline constexpr size_t kMaxListItems = size_t{1} << 20;
inline constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE
inline constexpr int64_t kMaxLoopIterations = 1000000;
// Lists and dicts inside one another: printing, comparing and reading JSON
// recurse along the nesting, so deeper values (and a namespace that holds
// itself) are refused rather than overflowing the stack.
inline constexpr int kMaxValueDepth = 500;

// InputError "chat template line N: msg".
[[noreturn]] void fail(int line, const std::string& msg);
// Fails when a string the template builds would pass kMaxTextBytes.
void check_text_size(size_t bytes, int line);

class Value;
using List = std::vector<Value>;
struct Dict;
struct Args;
using Function = std::function<Value(Args&)>;

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function };

  Value() = default;  // undefined
  // Taking apart a chain of nested lists or dicts goes through a worklist, so
  // no chain a template builds overflows the stack on its way out.
  ~Value();
  Value(const Value&) = default;
  Value(Value&&) noexcept = default;
  Value& operator=(const Value&) = default;
  Value& operator=(Value&&) noexcept = default;
  static Value none() { Value v; v.kind_ = Kind::None; return v; }
  Value(bool b) : kind_(Kind::Bool), b_(b) {}
  Value(int64_t i) : kind_(Kind::Int), i_(i) {}
  Value(int i) : kind_(Kind::Int), i_(i) {}
  Value(double d) : kind_(Kind::Float), d_(d) {}
  Value(std::string s) : kind_(Kind::String), s_(std::make_shared<std::string>(std::move(s))) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(List l) : kind_(Kind::List), l_(std::make_shared<List>(std::move(l))) {}
  // A tuple is a list that prints as Python's tuple ("(1, 'a')", "(1,)") and
  // never equals a list; a template cannot change either in place.
  static Value sequence(List l, bool tuple) {
    Value v(std::move(l));
    v.tuple_ = tuple;
    return v;
  }
  static Value tuple(List l) { return sequence(std::move(l), true); }
  Value(std::shared_ptr<Dict> d) : kind_(Kind::Dict), d_map_(std::move(d)) {}
  static Value function(std::string name, Function f);
  // Objects keep their keys' order with ordered_json (as Python's dicts);
  // an integer past int64 is an InputError.
  static Value from_json(const nlohmann::json& j);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int || kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float || kind_ == Kind::Bool; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }  // tuples too
  bool is_tuple() const { return tuple_; }
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_function() const { return kind_ == Kind::Function; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::Bool ? (b_ ? 1 : 0) : kind_ == Kind::Float ? static_cast<int64_t>(d_) : i_; }
  double as_double() const { return kind_ == Kind::Float ? d_ : static_cast<double>(as_int()); }
  const std::string& str() const { return *s_; }
  const List& list() const { return *l_; }
  Dict& dict() const { return *d_map_; }
  const std::shared_ptr<Dict>& dict_ptr() const { return d_map_; }
  const std::string& function_name() const;
  Value call(Args& args) const;

  bool truthy() const;
  // Python str(): what {{ value }} prints.
  std::string to_string() const;
  // Python repr(), used inside lists and dicts.
  std::string repr() const;
  std::string type_name() const;
  nlohmann::json to_json() const;

 private:
  std::string repr_at(int depth) const;
  // Moves out the items of a list or dict this value alone holds.
  void release_items(std::vector<Value>& out);

  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  bool tuple_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<std::string> s_;
  std::shared_ptr<List> l_;
  std::shared_ptr<Dict> d_map_;
  std::shared_ptr<std::pair<std::string, Function>> f_;
};

// An insertion-ordered string-keyed map (Python dicts keep insertion order).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;  // namespace() objects accept attribute assignment

  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

std::shared_ptr<Dict> make_dict();

struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // Positional argument `i`, else keyword `name`, else `fallback`.
  Value get(size_t i, const std::string& name, Value fallback = Value()) const;
};

bool values_equal(const Value& a, const Value& b);
// Python ordering for numbers and strings; throws for other kinds.
bool value_less(const Value& a, const Value& b);

// Python's repr() of a float ("1.0", "0.1", "1e+20").
std::string python_float_repr(double d);

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=indent), keys in insertion order.
std::string to_json_text(const Value& v, int indent);

}  // namespace synthpert::tokenizer::jinja
