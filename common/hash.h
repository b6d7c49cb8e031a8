// FNV-1a 64: a small, stable hash of bytes, the same on every platform and
// run. Used for seeds derived from names and for content digests; not a
// cryptographic hash.
#pragma once

#include <cstdint>
#include <string_view>

namespace synthpert {

constexpr uint64_t kFnv1a64Offset = 14695981039346656037ull;

constexpr uint64_t fnv1a64(std::string_view bytes, uint64_t h = kFnv1a64Offset) {
  for (char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

}  // namespace synthpert
