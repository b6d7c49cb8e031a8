// Deterministic test and benchmark text for the tokenizers: PerturbQA-style
// prompts over generated gene-like symbols, numbers of every length,
// whitespace runs, contractions, mixed scripts, emoji, invalid UTF-8 and
// special tokens inside text. Uses its own RNG arithmetic (not <random>'s
// distributions, which differ between standard libraries) so every machine
// generates the same strings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace synthpert::test {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  template <typename T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }

 private:
  uint64_t s_;
};

// Gene-like symbols (TP53-, ZNF-, MIR-, LINC-, C1orf-style shapes).
std::string gene_symbol(Rng& rng);

// One PerturbQA-style question (system/user wording of our prompts' kind).
std::string perturbqa_prompt(Rng& rng);

// `n` strings covering every category above. `specials` are special-token
// strings of the tokenizer under test, spliced into some strings.
// `valid_utf8_only` leaves out the invalid-UTF-8 category.
std::vector<std::string> oracle_strings(size_t n, uint64_t seed, const std::vector<std::string>& specials,
                                        bool valid_utf8_only = false);

// Real gene symbols from $PERTURBQA_DIR (or ../shared/perturbqa) when present; empty otherwise.
std::vector<std::string> perturbqa_gene_symbols(size_t max_count);

}  // namespace synthpert::test
