#include "tokenizer/jinja/parser.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "common/error.h"
#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/lexer.h"

namespace synthpert::tokenizer::jinja {
namespace {

using T = Token::Type;

// Statements Jinja has that this interpreter does not.
const char* const kUnsupportedStatements[] = {"call", "filter", "include", "import", "from", "extends", "block",
                                              "raw", "with", "autoescape", "do", "trans"};

// Parsing, rendering and freeing a tree all recurse along its depth, so a
// template nested or chained past these bounds is refused before it can
// exhaust the stack. Real chat templates stay below a tenth of them.
constexpr int kMaxNesting = 100;     // brackets, signs, `not`s and blocks open at once
constexpr int kMaxExprDepth = 200;   // one expression's tree, chains like a.b.c or 1+2+3 included

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Body parse_all() {
    std::vector<std::string> stop;
    Body body = parse_body({}, &stop);
    return body;
  }

 private:
  // Counts one level of recursive descent for as long as it lives.
  class Nested {
   public:
    explicit Nested(Parser& p) : p_(p) {
      if (++p_.nesting_ > kMaxNesting) p_.fail(str_cat("the template nests more than ", kMaxNesting, " levels deep"));
    }
    ~Nested() { --p_.nesting_; }
    Nested(const Nested&) = delete;
    Nested& operator=(const Nested&) = delete;

   private:
    Parser& p_;
  };

  // Records a finished node's depth from its children's and refuses a tree
  // deeper than kMaxExprDepth.
  ExprPtr sealed(ExprPtr e) const {
    int below = 0;
    auto see = [&](const ExprPtr& c) {
      if (c) below = std::max(below, c->depth);
    };
    see(e->a);
    see(e->b);
    see(e->c);
    for (const auto& c : e->args) see(c);
    for (const auto& c : e->keys) see(c);
    for (const auto& kv : e->kwargs) see(kv.second);
    e->depth = below + 1;
    if (e->depth > kMaxExprDepth) fail(str_cat("an expression nests or chains more than ", kMaxExprDepth, " operations deep"));
    return e;
  }

  const Token& peek(size_t k = 0) const { return t_[std::min(pos_ + k, t_.size() - 1)]; }
  const Token& next() { return t_[pos_++]; }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).type == T::Op && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).type == T::Name && peek(k).text == n; }

  // Python's ints have no bound; past int64 this interpreter would print
  // another number, so such a literal is refused.
  int64_t int_literal(const std::string& text) const {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno == ERANGE) fail("integer literal " + text + " is past int64");
    return static_cast<int64_t>(v);
  }

  [[noreturn]] void fail(const std::string& msg) const {
    throw InputError(str_cat("chat template line ", peek().line, ": ", msg));
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(str_cat("expected '", op, "', found ", describe(peek())));
    ++pos_;
  }
  void expect_close() {
    if (peek().type != T::Close) fail("expected the end of the tag, found " + describe(peek()));
    ++pos_;
  }
  std::string expect_name() {
    if (peek().type != T::Name) fail("expected a name, found " + describe(peek()));
    return next().text;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case T::Close: return "the end of the tag";
      case T::End: return "the end of the template";
      case T::String: return "a string";
      default: return "'" + t.text + "'";
    }
  }

  // Parses nodes until a statement tag whose keyword is in `stops`; leaves
  // pos_ on that keyword and reports it through `hit`.
  Body parse_body(const std::vector<std::string>& stops, std::vector<std::string>* hit) {
    Body body;
    while (true) {
      const Token& tok = peek();
      if (tok.type == T::End) {
        if (!stops.empty()) fail("missing {% " + stops.back() + " %}");
        return body;
      }
      if (tok.type == T::Text) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::Text;
        n->line = tok.line;
        n->text = next().text;
        body.push_back(std::move(n));
        continue;
      }
      if (tok.type == T::OpenOutput) {
        ++pos_;
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::Output;
        n->line = tok.line;
        n->expr = parse_expr();
        expect_close();
        body.push_back(std::move(n));
        continue;
      }
      // Statement tag.
      ++pos_;
      const std::string kw = peek().type == T::Name ? peek().text : "";
      for (const auto& s : stops)
        if (kw == s) {
          hit->assign(1, kw);
          return body;
        }
      body.push_back(parse_statement());
    }
  }

  NodePtr parse_statement() {
    const Nested guard(*this);
    const int line = peek().line;
    const std::string kw = expect_name();
    auto n = std::make_unique<Node>();
    n->line = line;
    if (kw == "if") return parse_if(std::move(n));
    if (kw == "for") return parse_for(std::move(n));
    if (kw == "set") return parse_set(std::move(n));
    if (kw == "macro") return parse_macro(std::move(n));
    if (kw == "break" || kw == "continue") {
      // Jinja2 refuses these outside a loop; run, they would cut the output short.
      if (loops_open_ == 0) fail("'" + kw + "' outside a loop");
      n->kind = kw == "break" ? Node::Kind::Break : Node::Kind::Continue;
      expect_close();
      return n;
    }
    if (kw == "generation") {
      // transformers' {% generation %} marks assistant text; it renders its body.
      expect_close();
      n->kind = Node::Kind::Generation;
      std::vector<std::string> hit;
      n->body = parse_body({"endgeneration"}, &hit);
      ++pos_;
      expect_close();
      return n;
    }
    for (const char* u : kUnsupportedStatements)
      if (kw == u) throw InputError(str_cat("chat template line ", line, ": unsupported statement '", kw, "'"));
    throw InputError(str_cat("chat template line ", line, ": unknown statement '", kw, "'"));
  }

  NodePtr parse_if(NodePtr n) {
    n->kind = Node::Kind::If;
    ExprPtr cond = parse_expr();
    expect_close();
    while (true) {
      std::vector<std::string> hit;
      Body body = parse_body({"elif", "else", "endif"}, &hit);
      n->branches.emplace_back(std::move(cond), std::move(body));
      ++pos_;
      if (hit[0] == "elif") {
        cond = parse_expr();
        expect_close();
        continue;
      }
      expect_close();
      if (hit[0] == "else") {
        n->else_body = parse_body({"endif"}, &hit);
        ++pos_;
        expect_close();
      }
      return n;
    }
  }

  NodePtr parse_for(NodePtr n) {
    n->kind = Node::Kind::For;
    n->targets.push_back(expect_name());
    while (is_op(",")) {
      ++pos_;
      n->targets.push_back(expect_name());
    }
    if (!is_name("in")) fail("expected 'in' in the for statement");
    ++pos_;
    n->expr = parse_or_ternary(false);
    if (is_name("if")) {
      ++pos_;
      n->filter = parse_or_ternary(false);
    }
    if (is_name("recursive")) fail("unsupported loop modifier 'recursive'");
    expect_close();
    std::vector<std::string> hit;
    ++loops_open_;
    n->body = parse_body({"else", "endfor"}, &hit);
    --loops_open_;
    ++pos_;
    expect_close();
    if (hit[0] == "else") {
      n->else_body = parse_body({"endfor"}, &hit);
      ++pos_;
      expect_close();
    }
    return n;
  }

  NodePtr parse_set(NodePtr n) {
    n->text = expect_name();
    if (is_op(".")) {
      ++pos_;
      n->attr = expect_name();
    }
    if (is_op(",")) fail("unsupported construct: tuple assignment in set");
    if (peek().type == T::Close) {
      // {% set x %}...{% endset %}
      if (!n->attr.empty()) fail("block set needs a plain variable name");
      ++pos_;
      n->kind = Node::Kind::SetBlock;
      std::vector<std::string> hit;
      n->body = parse_body({"endset"}, &hit);
      ++pos_;
      expect_close();
      return n;
    }
    n->kind = Node::Kind::Set;
    expect_op("=");
    n->expr = parse_expr();
    expect_close();
    return n;
  }

  NodePtr parse_macro(NodePtr n) {
    n->kind = Node::Kind::Macro;
    n->text = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      std::string p = expect_name();
      ExprPtr def;
      if (is_op("=")) {
        ++pos_;
        def = parse_expr();
      }
      n->params.emplace_back(std::move(p), std::move(def));
      if (!is_op(")")) expect_op(",");
    }
    ++pos_;
    expect_close();
    std::vector<std::string> hit;
    // A macro body is not inside the loop it may be defined in.
    const int outer_loops = loops_open_;
    loops_open_ = 0;
    n->body = parse_body({"endmacro"}, &hit);
    loops_open_ = outer_loops;
    ++pos_;
    expect_close();
    return n;
  }

  ExprPtr make(Expr::Kind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // expression := or_expr ['if' or_expr ['else' expression]]; a bare tuple
  // "a, b" is accepted where Jinja would build one (output tags, set values).
  ExprPtr parse_expr() {
    ExprPtr first = parse_or_ternary(true);
    if (!is_op(",")) return first;
    auto tup = make(Expr::Kind::TupleLit, first->line);
    tup->args.push_back(std::move(first));
    while (is_op(",")) {
      ++pos_;
      if (peek().type == T::Close || is_op(")")) break;
      tup->args.push_back(parse_or_ternary(true));
    }
    return sealed(std::move(tup));
  }

  ExprPtr parse_or_ternary(bool allow_cond) {
    const Nested guard(*this);
    ExprPtr e = parse_or();
    if (allow_cond && is_name("if")) {
      const int line = peek().line;
      ++pos_;
      auto c = make(Expr::Kind::Cond, line);
      c->a = std::move(e);
      c->b = parse_or();
      if (is_name("else")) {
        ++pos_;
        c->c = parse_or_ternary(true);
      }
      return sealed(std::move(c));
    }
    return e;
  }

  ExprPtr binary(std::string op, ExprPtr l, ExprPtr r) {
    auto e = make(Expr::Kind::Binary, l->line);
    e->name = std::move(op);
    e->a = std::move(l);
    e->b = std::move(r);
    return sealed(std::move(e));
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) { ++pos_; e = binary("or", std::move(e), parse_and()); }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) { ++pos_; e = binary("and", std::move(e), parse_not()); }
    return e;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      const Nested guard(*this);
      auto e = make(Expr::Kind::Unary, peek().line);
      ++pos_;
      e->name = "not";
      e->a = parse_not();
      return sealed(std::move(e));
    }
    return parse_compare();
  }
  // `a < b < c` means `a < b and b < c` with b evaluated once, as in
  // Python's Jinja2 (not `(a < b) < c`).
  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    auto e = make(Expr::Kind::Compare, first->line);
    e->args.push_back(std::move(first));
    while (true) {
      std::string op;
      if (peek().type == T::Op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                   peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        ++pos_;
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        pos_ += 2;
        op = "not in";
      } else {
        break;
      }
      e->ops.push_back(std::move(op));
      e->args.push_back(parse_math1());
    }
    if (e->ops.empty()) return std::move(e->args[0]);
    return sealed(std::move(e));
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) { const std::string op = next().text; e = binary(op, std::move(e), parse_concat()); }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) { ++pos_; e = binary("~", std::move(e), parse_math2()); }
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = next().text;
      e = binary(op, std::move(e), parse_pow());
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary();
    while (is_op("**")) { ++pos_; e = binary("**", std::move(e), parse_unary()); }
    return e;
  }
  // As Jinja2: a sign applies before the filters and tests, so `-1|abs` is
  // abs(-1).
  ExprPtr parse_unary(bool with_filters = true) {
    const Nested guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(Expr::Kind::Unary, peek().line);
      e->name = next().text;
      e->a = parse_unary(false);
      e = sealed(std::move(e));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    return with_filters ? parse_filters_and_tests(std::move(e)) : std::move(e);
  }

  void parse_call_args(std::vector<ExprPtr>& args, std::vector<std::pair<std::string, ExprPtr>>& kwargs) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().type == T::Name && is_op("=", 1)) {
        std::string k = next().text;
        ++pos_;
        kwargs.emplace_back(std::move(k), parse_or_ternary(true));
      } else {
        if (!kwargs.empty()) fail("positional argument after keyword argument");
        args.push_back(parse_or_ternary(true));
      }
      if (!is_op(")")) expect_op(",");
    }
    ++pos_;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const int line = peek().line;
      if (is_op(".")) {
        ++pos_;
        auto a = make(Expr::Kind::Attr, line);
        if (peek().type == T::Int) {
          // x.0 is item 0 in Jinja.
          a->kind = Expr::Kind::Index;
          auto lit = make(Expr::Kind::Literal, line);
          lit->value = Value(int_literal(next().text));
          a->b = std::move(lit);
        } else {
          a->name = expect_name();
        }
        a->a = std::move(e);
        e = sealed(std::move(a));
      } else if (is_op("[")) {
        ++pos_;
        ExprPtr parts[3];
        int n = 0;
        bool slice = false;
        while (true) {
          if (is_op(":")) {
            slice = true;
            ++pos_;
            if (++n > 2) fail("a slice takes at most three parts");
            continue;
          }
          if (is_op("]")) break;
          parts[n] = parse_or_ternary(true);
          if (!is_op(":") && !is_op("]")) fail("expected ':' or ']' in subscript");
        }
        ++pos_;
        if (slice) {
          auto s = make(Expr::Kind::Slice, line);
          s->a = std::move(e);
          for (auto& p : parts) s->args.push_back(std::move(p));
          e = sealed(std::move(s));
        } else {
          if (!parts[0]) fail("empty subscript");
          auto ix = make(Expr::Kind::Index, line);
          ix->a = std::move(e);
          ix->b = std::move(parts[0]);
          e = sealed(std::move(ix));
        }
      } else if (is_op("(")) {
        auto c = make(Expr::Kind::Call, line);
        c->a = std::move(e);
        parse_call_args(c->args, c->kwargs);
        e = sealed(std::move(c));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filters_and_tests(ExprPtr e) {
    while (true) {
      const int line = peek().line;
      if (is_op("|")) {
        ++pos_;
        auto f = make(Expr::Kind::Filter, line);
        f->name = expect_name();
        if (!has_filter(f->name))
          throw InputError(str_cat("chat template line ", line, ": unsupported filter '", f->name, "' (supported: ", filter_names(), ")"));
        f->a = std::move(e);
        if (is_op("(")) parse_call_args(f->args, f->kwargs);
        e = sealed(std::move(f));
      } else if (is_name("is")) {
        ++pos_;
        auto t = make(Expr::Kind::Test, line);
        if (is_name("not")) {
          ++pos_;
          t->negated = true;
        }
        t->name = expect_name();
        if (!has_test(t->name))
          throw InputError(str_cat("chat template line ", line, ": unsupported test '", t->name, "' (supported: ", test_names(), ")"));
        t->a = std::move(e);
        if (is_op("(")) {
          std::vector<std::pair<std::string, ExprPtr>> kw;
          parse_call_args(t->args, kw);
        } else if (peek().type == T::String || peek().type == T::Int || peek().type == T::Float || is_op("[") ||
                   is_op("{") ||
                   (peek().type == T::Name && !is_name("and") && !is_name("or") && !is_name("else") && !is_name("if") && !is_name("is") && !is_name("in") && !is_name("not"))) {
          // "x is divisibleby 3" / "x is sameas y" / "x is in ['a', 'b']": one
          // argument without parentheses.
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = sealed(std::move(t));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_primary() {
    const Token& tok = peek();
    const int line = tok.line;
    switch (tok.type) {
      case T::String: {
        auto e = make(Expr::Kind::Literal, line);
        std::string s = next().text;
        while (peek().type == T::String) s += next().text;  // adjacent literals concatenate
        e->value = Value(std::move(s));
        return e;
      }
      case T::Int: {
        auto e = make(Expr::Kind::Literal, line);
        e->value = Value(int_literal(next().text));
        return e;
      }
      case T::Float: {
        auto e = make(Expr::Kind::Literal, line);
        e->value = Value(std::strtod(next().text.c_str(), nullptr));
        return e;
      }
      case T::Name: {
        const std::string n = next().text;
        auto e = make(Expr::Kind::Literal, line);
        if (n == "true" || n == "True") e->value = Value(true);
        else if (n == "false" || n == "False") e->value = Value(false);
        else if (n == "none" || n == "None") e->value = Value::none();
        else {
          e->kind = Expr::Kind::Name;
          e->name = n;
        }
        return e;
      }
      case T::Op: {
        if (tok.text == "(") {
          ++pos_;
          if (is_op(")")) {
            ++pos_;
            return make(Expr::Kind::TupleLit, line);
          }
          ExprPtr inner = parse_expr();
          expect_op(")");
          return inner;
        }
        if (tok.text == "[") {
          ++pos_;
          auto e = make(Expr::Kind::ListLit, line);
          while (!is_op("]")) {
            e->args.push_back(parse_or_ternary(true));
            if (!is_op("]")) expect_op(",");
          }
          ++pos_;
          return sealed(std::move(e));
        }
        if (tok.text == "{") {
          ++pos_;
          auto e = make(Expr::Kind::DictLit, line);
          while (!is_op("}")) {
            e->keys.push_back(parse_or_ternary(true));
            expect_op(":");
            e->args.push_back(parse_or_ternary(true));
            if (!is_op("}")) expect_op(",");
          }
          ++pos_;
          return sealed(std::move(e));
        }
        break;
      }
      default: break;
    }
    fail("unexpected " + describe(tok) + " in expression");
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  int loops_open_ = 0;
  int nesting_ = 0;     // recursive descent levels open; see Nested  // for bodies being parsed around the current token
};

}  // namespace

Body parse_template(const std::string& source) {
  Parser p(lex(source));
  return p.parse_all();
}

}  // namespace synthpert::tokenizer::jinja
