#include "tokenizer/jinja/interpreter.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <iterator>
#include <memory>
#include <unordered_map>

#include "common/error.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/parser.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer::jinja {
namespace {

// Python's integer arithmetic, exact within int64: a result past it is
// refused (Python's ints are unbounded), never wrapped or rounded through a
// double. `//` and `%` round toward negative infinity; a negative power is a
// float, as in Python.
Value int_arith(int line, const std::string& op, int64_t a, int64_t b) {
  int64_t out = 0;
  auto check = [&](bool overflowed) {
    if (overflowed) fail(line, str_cat(a, " ", op, " ", b, " is past the 64-bit integer range"));
  };
  if (op == "+") check(__builtin_add_overflow(a, b, &out));
  else if (op == "-") check(__builtin_sub_overflow(a, b, &out));
  else if (op == "*") check(__builtin_mul_overflow(a, b, &out));
  else if (op == "**") {
    if (b < 0) return Value(std::pow(static_cast<double>(a), static_cast<double>(b)));
    int64_t base = a;
    out = 1;
    for (int64_t e = b; e > 0; e >>= 1) {
      if (e & 1) check(__builtin_mul_overflow(out, base, &out));
      if (e > 1) check(__builtin_mul_overflow(base, base, &base));
    }
  } else if (op == "//" || op == "%") {
    if (b == 0) fail(line, "division by zero");
    check(a == INT64_MIN && b == -1);
    int64_t q = a / b, m = a % b;
    if (m != 0 && ((m < 0) != (b < 0))) {
      --q;
      m += b;
    }
    out = op == "//" ? q : m;
  } else {
    fail(line, "unknown operator '" + op + "'");
  }
  return Value(out);
}

// Control flow out of a loop body.
enum class Flow { Normal, Break, Continue };

// Rendering recurses through statements, expressions and macro calls; a
// template past these bounds (most often a macro whose recursion never ends)
// is refused instead of exhausting the stack. The parser already bounds one
// expression's depth, so these count macro calls and everything they nest.
constexpr int kMaxMacroCalls = 100;   // macro calls open at once
constexpr int kMaxRenderDepth = 2000; // statements and expressions being evaluated at once (about 1.3 MB of stack)

class Renderer {
 public:
  explicit Renderer(const std::map<std::string, Value>& globals) {
    scopes_.emplace_back();
    for (const auto& [k, v] : globals) scopes_.back()[k] = v;
    install_functions();
  }

  // A namespace can hold itself ({% set ns.me = ns %}), directly or through a
  // list, and shared ownership alone would never free it. Nothing a render
  // builds outlives it (it returns text), so emptying every namespace still
  // alive at the end breaks each such cycle.
  ~Renderer() {
    for (const auto& weak : namespaces_) {
      if (const auto ns = weak.lock()) {
        std::vector<std::pair<std::string, Value>> items;
        items.swap(ns->items);  // freed here, after ns no longer points at them
      }
    }
  }
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  Flow run(const Body& body, std::string& out) {
    for (const auto& n : body) {
      const Flow f = exec(*n, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  using Scope = std::unordered_map<std::string, Value>;

  void install_functions() {
    Scope& g = scopes_.front();
    g["raise_exception"] = Value::function("raise_exception", [](Args& a) -> Value {
      throw InputError("chat template raised an exception: " + a.get(0, "message").to_string());
    });
    g["namespace"] = Value::function("namespace", [this](Args& a) -> Value {
      auto d = make_dict();
      d->is_namespace = true;
      remember_namespace(d);
      for (const auto& p : a.positional) {
        if (!p.is_dict()) throw InputError("chat template: namespace() takes keyword arguments or a dict");
        for (const auto& kv : p.dict().items) d->set(kv.first, kv.second);
      }
      for (const auto& [k, v] : a.keyword) d->set(k, v);
      return Value(d);
    });
    g["dict"] = Value::function("dict", [](Args& a) -> Value {
      auto d = make_dict();
      for (const auto& [k, v] : a.keyword) d->set(k, v);
      return Value(d);
    });
    g["range"] = Value::function("range", [](Args& a) -> Value {
      int64_t start = 0, stop, step = 1;
      if (a.positional.size() == 1) stop = a.positional[0].as_int();
      else if (a.positional.size() >= 2) {
        start = a.positional[0].as_int();
        stop = a.positional[1].as_int();
        if (a.positional.size() > 2) step = a.positional[2].as_int();
      } else throw InputError("chat template: range() needs 1 to 3 arguments");
      if (step == 0) throw InputError("chat template: range() step must not be zero");
      // The count first, in 128 bits: stepping past the last value could
      // leave the 64-bit range.
      const __int128 span = step > 0 ? __int128{stop} - start : __int128{start} - stop;
      const __int128 stride = step > 0 ? __int128{step} : -__int128{step};
      const int64_t count =
          span <= 0 ? 0 : static_cast<int64_t>(std::min<__int128>((span + stride - 1) / stride, kMaxRange + 1));
      if (count > kMaxRange)
        throw InputError(
            str_cat("chat template: range() of more than ", kMaxRange, " numbers (Jinja2's sandbox limit)"));
      List out;
      for (int64_t k = 0; k < count; ++k) out.emplace_back(static_cast<int64_t>(start + __int128{k} * step));
      return Value(out);
    });
    // transformers provides strftime_now for templates that print today's date.
    g["strftime_now"] = Value::function("strftime_now", [](Args& a) -> Value {
      const std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[256];
      const size_t n = std::strftime(buf, sizeof buf, a.get(0, "format").to_string().c_str(), &tm);
      return Value(std::string(buf, n));
    });
  }

  void remember_namespace(const std::shared_ptr<Dict>& d) {
    // A loop that makes a namespace per iteration leaves many expired entries;
    // they are dropped whenever the list would grow.
    if (namespaces_.size() == namespaces_.capacity())
      namespaces_.erase(std::remove_if(namespaces_.begin(), namespaces_.end(),
                                       [](const std::weak_ptr<Dict>& w) { return w.expired(); }),
                        namespaces_.end());
    namespaces_.push_back(d);
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      const auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value();
  }

  // Counts one level of rendering recursion for as long as it lives.
  class Deeper {
   public:
    Deeper(int& counter, int limit, int line, const std::string& what) : counter_(counter) {
      if (counter_ >= limit) fail(line, str_cat(what, " (limit ", limit, ")"));
      ++counter_;
    }
    ~Deeper() { --counter_; }
    Deeper(const Deeper&) = delete;
    Deeper& operator=(const Deeper&) = delete;

   private:
    int& counter_;
  };

  Flow exec(const Node& n, std::string& out) {
    const Deeper level(depth_, kMaxRenderDepth, n.line, "the template nests too deeply to render");
    switch (n.kind) {
      case Node::Kind::Text:
        out += n.text;
        check_text_size(out.size(), n.line);
        return Flow::Normal;
      case Node::Kind::Output: {
        const Value v = eval(*n.expr);
        out += v.to_string();
        check_text_size(out.size(), n.line);
        return Flow::Normal;
      }
      case Node::Kind::If:
        for (const auto& [cond, body] : n.branches)
          if (eval(*cond).truthy()) return run(body, out);
        return run(n.else_body, out);
      case Node::Kind::For: return exec_for(n, out);
      case Node::Kind::Set: {
        Value v = eval(*n.expr);
        if (n.attr.empty()) {
          scopes_.back()[n.text] = std::move(v);
        } else {
          const Value target = lookup(n.text);
          if (!target.is_dict() || !target.dict().is_namespace)
            fail(n.line, "cannot assign attribute '" + n.attr + "' of '" + n.text + "': it is not a namespace()");
          target.dict().set(n.attr, std::move(v));
        }
        return Flow::Normal;
      }
      case Node::Kind::SetBlock: {
        std::string captured;
        run(n.body, captured);
        scopes_.back()[n.text] = Value(captured);
        return Flow::Normal;
      }
      case Node::Kind::Break: return Flow::Break;
      case Node::Kind::Continue: return Flow::Continue;
      case Node::Kind::Generation: return run(n.body, out);
      case Node::Kind::Macro: define_macro(n); return Flow::Normal;
    }
    return Flow::Normal;
  }

  // A macro sees the scopes it was defined in (the template's top level, and
  // the loop iteration it was defined in), not its caller's: Jinja2's rule.
  void define_macro(const Node& n) {
    const Node* def = &n;
    const size_t depth = scopes_.size();
    scopes_.back()[n.text] = Value::function(n.text, [this, def, depth](Args& a) -> Value {
      const Deeper call(macro_calls_, kMaxMacroCalls, def->line,
                        "macro '" + def->text + "' is called inside too many unfinished macro calls: does its recursion end?");
      Scope local;
      for (size_t i = 0; i < def->params.size(); ++i) {
        const auto& [pname, pdefault] = def->params[i];
        Value v = a.get(i, pname);
        if (v.is_undefined() && pdefault) v = eval(*pdefault);
        local[pname] = v;
      }
      // The caller's inner scopes step aside while the body runs.
      const size_t keep = std::min(depth, scopes_.size());
      std::vector<Scope> callers(std::make_move_iterator(scopes_.begin() + static_cast<std::ptrdiff_t>(keep)),
                                 std::make_move_iterator(scopes_.end()));
      scopes_.resize(keep);
      scopes_.push_back(std::move(local));
      auto restore = [&] {
        scopes_.resize(keep);
        for (auto& scope : callers) scopes_.push_back(std::move(scope));
      };
      std::string captured;
      try {
        run(def->body, captured);
      } catch (...) {
        restore();
        throw;
      }
      restore();
      return Value(captured);
    });
  }

  void count_iteration(int line) {
    if (++iterations_ > kMaxLoopIterations)
      fail(line, str_cat("the template runs more than ", kMaxLoopIterations, " loop iterations"));
  }

  Flow exec_for(const Node& n, std::string& out) {
    const Value seq = eval(*n.expr);
    List items;
    if (seq.is_list()) items = seq.list();
    else if (seq.is_dict()) for (const auto& kv : seq.dict().items) items.emplace_back(kv.first);
    else if (seq.is_string()) {
      const std::string& s = seq.str();
      for (size_t i = 0; i < s.size();) {
        const size_t len = std::max<size_t>(1, utf8_sequence(s, i));
        items.emplace_back(s.substr(i, len));
        i += len;
        if (items.size() > kMaxListItems)
          fail(n.line, str_cat("cannot loop over a string of more than ", kMaxListItems, " characters"));
      }
    } else if (!seq.is_undefined() && !seq.is_none()) {
      fail(n.line, "cannot loop over " + seq.type_name());
    } else if (seq.is_none()) {
      fail(n.line, "cannot loop over none");
    }

    // Each iteration runs in a scope of its own, as in Jinja2: what a body
    // sets is gone at the next iteration and after the loop.
    scopes_.emplace_back();
    const auto bind = [&](const Value& item) {
      if (n.targets.size() == 1) {
        scopes_.back()[n.targets[0]] = item;
        return;
      }
      if (!item.is_list() || item.list().size() != n.targets.size())
        fail(n.line, str_cat("cannot unpack ", item.type_name(), " into ", n.targets.size(), " loop variables"));
      for (size_t k = 0; k < n.targets.size(); ++k) scopes_.back()[n.targets[k]] = item.list()[k];
    };
    if (n.filter) {
      List kept;
      for (const auto& item : items) {
        count_iteration(n.line);
        bind(item);
        if (eval(*n.filter).truthy()) kept.push_back(item);
      }
      items.swap(kept);
    }
    const int64_t len = static_cast<int64_t>(items.size());
    Flow result = Flow::Normal;
    for (int64_t i = 0; i < len; ++i) {
      count_iteration(n.line);
      scopes_.back().clear();
      bind(items[i]);
      auto loop = make_dict();
      loop->set("index", Value(i + 1));
      loop->set("index0", Value(i));
      loop->set("revindex", Value(len - i));
      loop->set("revindex0", Value(len - i - 1));
      loop->set("first", Value(i == 0));
      loop->set("last", Value(i == len - 1));
      loop->set("length", Value(len));
      loop->set("previtem", i > 0 ? items[i - 1] : Value());
      loop->set("nextitem", i + 1 < len ? items[i + 1] : Value());
      loop->set("cycle", Value::function("cycle", [i](Args& a) -> Value {
        if (a.positional.empty()) throw InputError("chat template: loop.cycle() needs arguments");
        return a.positional[static_cast<size_t>(i) % a.positional.size()];
      }));
      scopes_.back()["loop"] = Value(loop);
      const Flow f = run(n.body, out);
      if (f == Flow::Break) break;
    }
    scopes_.pop_back();
    if (len == 0) result = run(n.else_body, out);
    return result;
  }

  // Every value an expression gives stays within the sizes of value.h; one
  // step can grow a string or list by a bounded factor only (~, +), or
  // checks its own growth (*, replace, join, indent, tojson).
  Value eval(const Expr& e) {
    Value v = evaluate(e);
    if (v.is_string()) check_text_size(v.str().size(), e.line);
    if (v.is_list() && v.list().size() > kMaxListItems)
      fail(e.line, str_cat("the template builds a list of more than ", kMaxListItems, " items"));
    return v;
  }

  Value evaluate(const Expr& e) {
    const Deeper level(depth_, kMaxRenderDepth, e.line, "the template nests too deeply to render");
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: return lookup(e.name);
      case Expr::Kind::Attr: {
        const Value obj = eval(*e.a);
        if (obj.is_undefined()) fail(e.line, "'" + describe(*e.a) + "' is undefined (reading ." + e.name + ")");
        if (obj.is_dict()) {
          const Value* f = obj.dict().find(e.name);
          return f ? *f : Value();
        }
        return Value();
      }
      case Expr::Kind::Index: return index(eval(*e.a), eval(*e.b), e);
      case Expr::Kind::Slice: return slice(e);
      case Expr::Kind::Call: return call(e);
      case Expr::Kind::Filter: {
        const Value v = eval(*e.a);
        Args args = eval_args(e);
        return apply_filter(e.name, v, args, e.line);
      }
      case Expr::Kind::Test: {
        const Value v = eval(*e.a);
        std::vector<Value> args;
        for (const auto& x : e.args) args.push_back(eval(*x));
        return Value(apply_test(e.name, v, args, e.line) != e.negated);
      }
      case Expr::Kind::Unary: {
        const Value v = eval(*e.a);
        if (e.name == "not") return Value(!v.truthy());
        if (!v.is_number()) fail(e.line, "unary " + e.name + " needs a number, got " + v.type_name());
        if (e.name == "+") return v;
        return v.kind() == Value::Kind::Float ? Value(-v.as_double()) : Value(-v.as_int());
      }
      case Expr::Kind::Binary: return binary(e);
      case Expr::Kind::Compare: return compare_chain(e);
      case Expr::Kind::Cond:
        if (eval(*e.b).truthy()) return eval(*e.a);
        return e.c ? eval(*e.c) : Value();
      case Expr::Kind::ListLit:
      case Expr::Kind::TupleLit: {
        List l;
        for (const auto& x : e.args) l.push_back(eval(*x));
        return Value::sequence(std::move(l), e.kind == Expr::Kind::TupleLit);
      }
      case Expr::Kind::DictLit: {
        auto d = make_dict();
        for (size_t i = 0; i < e.keys.size(); ++i) {
          const Value k = eval(*e.keys[i]);
          if (!k.is_string()) fail(e.line, "dict keys must be strings, got " + k.type_name());
          d->set(k.str(), eval(*e.args[i]));
        }
        return Value(d);
      }
    }
    return Value();
  }

  static std::string describe(const Expr& e) {
    if (e.kind == Expr::Kind::Name) return e.name;
    if (e.kind == Expr::Kind::Attr) return describe(*e.a) + "." + e.name;
    return "value";
  }

  Args eval_args(const Expr& e) {
    Args a;
    for (const auto& x : e.args) a.positional.push_back(eval(*x));
    for (const auto& [k, x] : e.kwargs) a.keyword.emplace_back(k, eval(*x));
    return a;
  }

  Value call(const Expr& e) {
    Args args = eval_args(e);
    if (e.a->kind == Expr::Kind::Attr) {
      const Value obj = eval(*e.a->a);
      if (obj.is_dict()) {
        const Value* f = obj.dict().find(e.a->name);
        if (f && f->is_function()) return f->call(args);
      }
      return call_method(obj, e.a->name, args, e.line);
    }
    const Value callee = eval(*e.a);
    if (!callee.is_function()) {
      if (e.a->kind == Expr::Kind::Name) fail(e.line, "unsupported function '" + e.a->name + "'");
      fail(e.line, callee.type_name() + " is not callable");
    }
    return callee.call(args);
  }

  Value index(const Value& obj, const Value& key, const Expr& e) {
    if (obj.is_dict()) {
      if (!key.is_string()) return Value();
      const Value* f = obj.dict().find(key.str());
      return f ? *f : Value();
    }
    if (obj.is_list()) {
      // In place: templates index messages[i] once per message.
      if (!key.is_int()) fail(e.line, "index must be an integer, got " + key.type_name());
      const List& items = obj.list();
      int64_t i = key.as_int();
      const int64_t n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();
      return items[static_cast<size_t>(i)];
    }
    if (obj.is_string()) {
      if (!key.is_int()) fail(e.line, "index must be an integer, got " + key.type_name());
      // Code points, as Python's str: one walk, no list of characters.
      const std::string& s = obj.str();
      int64_t i = key.as_int();
      if (i < 0) {
        int64_t n = 0;
        for (size_t at = 0; at < s.size(); ++n) at += std::max<size_t>(1, utf8_sequence(s, at));
        i += n;
      }
      if (i < 0) return Value();
      for (size_t at = 0; at < s.size(); --i) {
        const size_t len = std::max<size_t>(1, utf8_sequence(s, at));
        if (i == 0) return Value(s.substr(at, len));
        at += len;
      }
      return Value();
    }
    if (obj.is_undefined()) fail(e.line, "'" + describe(*e.a) + "' is undefined (indexing it)");
    return Value();
  }

  static List chars_of(const std::string& s) {
    List out;
    for (size_t i = 0; i < s.size();) {
      const size_t len = std::max<size_t>(1, utf8_sequence(s, i));
      out.emplace_back(s.substr(i, len));
      i += len;
    }
    return out;
  }

  // Python slicing semantics, including negative steps.
  Value slice(const Expr& e) {
    const Value obj = eval(*e.a);
    Value parts[3];
    for (int k = 0; k < 3; ++k)
      if (e.args[k]) parts[k] = eval(*e.args[k]);
    if (!obj.is_list() && !obj.is_string()) fail(e.line, "cannot slice " + obj.type_name());
    const List items = obj.is_list() ? obj.list() : chars_of(obj.str());
    const int64_t n = static_cast<int64_t>(items.size());
    const int64_t step = parts[2].is_number() ? parts[2].as_int() : 1;
    if (step == 0) fail(e.line, "slice step cannot be zero");
    const auto clamp = [&](const Value& v, int64_t dflt) {
      if (!v.is_number()) return dflt;
      int64_t x = v.as_int();
      if (x < 0) x += n;
      if (step > 0) return std::max<int64_t>(0, std::min(x, n));
      return std::max<int64_t>(-1, std::min(x, n - 1));
    };
    const int64_t start = clamp(parts[0], step > 0 ? 0 : n - 1);
    const int64_t stop = clamp(parts[1], step > 0 ? n : -1);
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(items[static_cast<size_t>(i)]);
    if (obj.is_list()) return Value::sequence(std::move(out), obj.is_tuple());
    std::string s;
    for (const auto& c : out) s += c.str();
    return Value(s);
  }

  // Python's chain: stops at the first false link, each operand evaluated
  // at most once.
  Value compare_chain(const Expr& e) {
    Value l = eval(*e.args[0]);
    for (size_t i = 0; i < e.ops.size(); ++i) {
      Value r = eval(*e.args[i + 1]);
      if (!compare(e.ops[i], l, r, e.line)) return Value(false);
      l = std::move(r);
    }
    return Value(true);
  }

  bool compare(const std::string& op, const Value& l, const Value& r, int line) {
    if (op == "==") return values_equal(l, r);
    if (op == "!=") return !values_equal(l, r);
    if (op == "<") return value_less(l, r);
    if (op == ">") return value_less(r, l);
    if (op == "<=") return !value_less(r, l);
    if (op == ">=") return !value_less(l, r);
    // in, not in
    bool found = false;
    if (r.is_string()) {
      if (!l.is_string()) fail(line, "'in <string>' needs a string on the left, got " + l.type_name());
      found = r.str().find(l.str()) != std::string::npos;
    } else if (r.is_list()) {
      for (const auto& x : r.list()) found = found || values_equal(x, l);
    } else if (r.is_dict()) {
      found = l.is_string() && r.dict().find(l.str()) != nullptr;
    } else if (!r.is_undefined()) {
      fail(line, "'in' needs a string, list or dict on the right, got " + r.type_name());
    }
    return op == "in" ? found : !found;
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      const Value l = eval(*e.a);
      return l.truthy() ? eval(*e.b) : l;
    }
    if (op == "or") {
      const Value l = eval(*e.a);
      return l.truthy() ? l : eval(*e.b);
    }
    const Value l = eval(*e.a), r = eval(*e.b);
    if (op == "~") return Value(l.to_string() + r.to_string());
    if (l.is_undefined() || r.is_undefined())
      fail(e.line, "operator '" + op + "' used with an undefined value ('" + describe(l.is_undefined() ? *e.a : *e.b) + "')");
    if (op == "+") {
      if (l.is_string() && r.is_string()) return Value(l.str() + r.str());
      if (l.is_list() && r.is_list() && l.is_tuple() == r.is_tuple()) {
        List out = l.list();
        out.insert(out.end(), r.list().begin(), r.list().end());
        return Value::sequence(std::move(out), l.is_tuple());
      }
    }
    if (op == "*" && l.is_string() && r.is_int()) {
      if (r.as_int() > 0 && !l.str().empty())
        check_text_size(static_cast<size_t>(std::min<int64_t>(r.as_int(), kMaxTextBytes + 1)) * l.str().size(), e.line);
      std::string out;
      for (int64_t k = 0; k < r.as_int(); ++k) out += l.str();
      return Value(out);
    }
    if (!l.is_number() || !r.is_number())
      fail(e.line, "unsupported operand types for " + op + ": " + l.type_name() + " and " + r.type_name());
    const bool flt = l.kind() == Value::Kind::Float || r.kind() == Value::Kind::Float;
    if (op == "/") {
      if (r.as_double() == 0) fail(e.line, "division by zero");
      return Value(l.as_double() / r.as_double());
    }
    if (!flt) return Value(int_arith(e.line, op, l.as_int(), r.as_int()));
    if (op == "+") return Value(l.as_double() + r.as_double());
    if (op == "-") return Value(l.as_double() - r.as_double());
    if (op == "*") return Value(l.as_double() * r.as_double());
    if (op == "**") return Value(std::pow(l.as_double(), r.as_double()));
    if (r.as_double() == 0) fail(e.line, "division by zero");
    if (op == "//") return Value(std::floor(l.as_double() / r.as_double()));
    if (op == "%") {
      const double m = std::fmod(l.as_double(), r.as_double());
      return Value(m != 0 && ((m < 0) != (r.as_double() < 0)) ? m + r.as_double() : m);
    }
    fail(e.line, "unknown operator '" + op + "'");
  }

  std::vector<Scope> scopes_;
  std::vector<std::weak_ptr<Dict>> namespaces_;  // every namespace() made; see ~Renderer
  int depth_ = 0;        // exec and eval calls open; see Deeper
  int64_t iterations_ = 0;  // loop iterations so far; see count_iteration
  int macro_calls_ = 0;  // macro calls open
};

}  // namespace

Template::Template(const std::string& source)
    : body_(std::make_shared<const Body>(parse_template(source))) {}

std::string Template::render(const std::map<std::string, Value>& globals) const {
  Renderer r(globals);
  std::string out;
  r.run(*body_, out);
  return out;
}

}  // namespace synthpert::tokenizer::jinja
