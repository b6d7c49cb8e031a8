// Error helpers shared by every layer.
//
// The CLI turns any std::exception into one line on stderr and a non-zero exit,
// so every message must name the input and the rule it broke on its own.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace synthpert {

// Thrown for bad user input (files, flags, data). The CLI exits 2 for these.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& os, T&& first, Rest&&... rest) {
  os << std::forward<T>(first);
  append_all(os, std::forward<Rest>(rest)...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into one string.
template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  detail::append_all(os, std::forward<Args>(args)...);
  return os.str();
}

}  // namespace synthpert

// Checks an input precondition; the message parts are only formatted on failure.
#define SP_CHECK_INPUT(cond, ...)                                   \
  do {                                                              \
    if (!(cond)) throw ::synthpert::InputError(::synthpert::str_cat(__VA_ARGS__)); \
  } while (0)

// Checks an internal invariant (a bug if it fails, not a user error).
#define SP_CHECK(cond, ...)                                                        \
  do {                                                                             \
    if (!(cond))                                                                   \
      throw std::logic_error(::synthpert::str_cat(__FILE__, ":", __LINE__, ": ",   \
                                                  __VA_ARGS__));                   \
  } while (0)
