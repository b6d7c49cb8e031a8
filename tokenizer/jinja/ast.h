// Syntax tree of a parsed chat template.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace synthpert::tokenizer::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,    // value
    Name,       // name
    Attr,       // a.name
    Index,      // a[b]
    Slice,      // a[b:c:d] (args[0..2], null = omitted)
    Call,       // a(args, kwargs)
    Filter,     // a | name(args, kwargs)
    Test,       // a is [not] name(args)
    Unary,      // op a   (not, -, +)
    Binary,     // a op b (or, and, +, ~, ...)
    Compare,    // args[0] ops[0] args[1] ops[1] ... (==, <, in, not in, ...; chained as in Python)
    Cond,       // a if b else c
    ListLit,    // [args]
    TupleLit,   // (args)
    DictLit,    // {keys[i]: args[i]}
  };
  Kind kind;
  int line = 0;
  int depth = 1;         // levels in this subtree; the parser bounds it
  Value value;           // Literal
  std::string name;      // Name, Attr, Filter, Test, Unary/Binary operator
  bool negated = false;  // Test
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<ExprPtr> keys;                                   // DictLit
  std::vector<std::string> ops;                                // Compare
  std::vector<std::pair<std::string, ExprPtr>> kwargs;         // Call, Filter
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Break, Continue, Macro, Generation };
  Kind kind;
  int line = 0;
  std::string text;                  // Text; Set/SetBlock/Macro target name
  std::string attr;                  // Set: namespace attribute (ns.attr = ...)
  ExprPtr expr;                      // Output, Set value, For iterable
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: condition + body per if/elif
  Body body, else_body;              // For/SetBlock/Macro/Generation body; If/For else
  std::vector<std::string> targets;  // For loop variables
  ExprPtr filter;                    // For ... if cond
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro parameters with defaults (null: none)
};

}  // namespace synthpert::tokenizer::jinja
