// Small, stable hashes, the same on every platform and run: FNV-1a 64 of
// bytes (seeds derived from names, content digests) and SplitMix64's
// finalizer of a 64-bit word (counter-based random values). Neither is a
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

// SplitMix64's output step of x: consecutive inputs give unrelated outputs.
constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace synthpert
