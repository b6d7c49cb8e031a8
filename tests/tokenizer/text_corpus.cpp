#include "tests/tokenizer/text_corpus.h"

#include <cstdlib>
#include <fstream>
#include <set>

namespace synthpert::test {
namespace {

const std::vector<std::string> kCells = {"K562", "RPE1", "HepG2", "Jurkat"};
const std::vector<std::string> kLabels = {"upregulated", "downregulated", "not differentially expressed"};

const std::vector<std::string> kScripts = {
    "Привет, мир", "Γειά σου κόσμε", "你好，世界", "こんにちは世界", "안녕하세요 세계", "مرحبا بالعالم", "שלום עולם",
    "नमस्ते दुनिया", "สวัสดีชาวโลก", "Café crème brûlée", "naïve façade", "Ærøskøbing", "Straße", "İstanbul ılık",
    "ΣΊΣΥΦΟΣ", "Ёжик в тумане", "東京都渋谷区", "ʻŌlelo Hawaiʻi", "Tiếng Việt có dấu", "ɡɹiːn ˈʃɪp", "½ ¾ ⅓ ²³",
    "∑ ∫ √ ∞ ≠ ≤", "→ ⇒ ↔", "“quoted” ‘single’ «guillemets»", "— – … • ·", "€ £ ¥ ₹ ₿"};
// Decomposed (NFD) forms, which an NFC normalizer must compose.
const std::vector<std::string> kDecomposed = {"Cafe\xCC\x81", "n\xCC\x83o", "A\xCC\x8A", "e\xCC\x81\xCC\x81", "\xE1\x84\x80\xE1\x85\xA1"};
const std::vector<std::string> kEmoji = {"😀", "👍🏽", "👨‍👩‍👧", "🇺🇸", "1️⃣", "🧬", "🔬", "❤️", "🏳️‍🌈", "🤖"};
const std::vector<std::string> kContractions = {"don't", "I'M", "they've", "We'LL", "it's", "she'd", "you're", "'s",
                                                "''", "isn't", "O'Neil's", "rock'n'roll", "'tis", "y'all'd've"};
const std::vector<std::string> kWhitespace = {" ", "  ", "\t", "\n", "\r\n", "\n\n", " \n ", "\t\t ", "\u00a0",
                                              "\u3000", "\u2009", "   \n\n\t", "\r", "\f", "\v"};
const std::vector<std::string> kInvalid = {
    "\x80", "\xBF", "\xC0\x80", "\xC3", "\xE2\x82", "\xED\xA0\x80", "\xF0\x9F\x98", "\xF5\x80\x80\x80", "\xFF",
    "\xFE\xFF", "\xE0\x80\xAF", "\xF4\x90\x80\x80", "\xC2\x41", "\xE1\x80\xC2\x62"};
const std::vector<std::string> kTags = {"<think>", "</think>", "<answer>", "</answer>", "{\"a\": [1, 2]}", "```python\n", "$x^2$",
                                        "http://example.org/a?b=c", "user@example.com", "#include <x>", "a_b-c.d/e"};

std::string number(Rng& rng) {
  const size_t len = 1 + rng.below(40);
  std::string s;
  for (size_t i = 0; i < len; ++i) s += static_cast<char>('0' + rng.below(10));
  switch (rng.below(5)) {
    case 0: return "-" + s;
    case 1: return s.substr(0, std::max<size_t>(1, s.size() / 2)) + "." + s;
    case 2: return "1,234,567";
    default: return s;
  }
}

std::string fragment(Rng& rng, const std::vector<std::string>& specials, bool valid_only) {
  switch (rng.below(valid_only ? 11 : 12)) {
    case 0: return perturbqa_prompt(rng);
    case 1: return gene_symbol(rng);
    case 2: return number(rng);
    case 3: return rng.pick(kWhitespace);
    case 4: return rng.pick(kContractions);
    case 5: return rng.pick(kScripts);
    case 6: return rng.pick(kEmoji);
    case 7: return rng.pick(kTags);
    case 8: return rng.pick(kDecomposed);
    case 9: return specials.empty() ? std::string("<s>") : rng.pick(specials);
    case 10: {
      std::string s(1 + rng.below(12), ' ');
      return rng.below(2) ? s : std::string(1 + rng.below(6), '\n');
    }
    default: return rng.pick(kInvalid);
  }
}

}  // namespace

std::string gene_symbol(Rng& rng) {
  static const char* upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const auto digits = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += static_cast<char>('0' + rng.below(10));
    if (s[0] == '0') s[0] = '1';
    return s;
  };
  std::string g;
  switch (rng.below(8)) {
    case 0: return "ZNF" + digits(1 + rng.below(3));
    case 1: return "MIR" + digits(1 + rng.below(4)) + (rng.below(2) ? "-" + digits(1) : "");
    case 2: return "LINC0" + digits(4);
    case 3: return "C" + digits(1) + "orf" + digits(1 + rng.below(3));
    case 4: return "HLA-" + std::string(1, upper[rng.below(26)]) + std::string(1, upper[rng.below(26)]) + digits(1);
    case 5: return "ENSG" + std::string(5, '0') + digits(6);
    default:
      for (size_t i = 0, n = 2 + rng.below(4); i < n; ++i) g += upper[rng.below(26)];
      if (rng.below(3)) g += digits(1 + rng.below(2));
      if (rng.below(4) == 0) g += upper[rng.below(26)];
      return g;
  }
}

std::string perturbqa_prompt(Rng& rng) {
  const std::string pert = gene_symbol(rng), gene = gene_symbol(rng), cell = rng.pick(kCells);
  switch (rng.below(3)) {
    case 0:
      return "In " + cell + " cells, does a CRISPRi knockdown of " + pert + " change the expression of " + gene +
             "? Answer with one of: upregulated, downregulated, not differentially expressed.";
    case 1:
      return "You are an expert molecular biologist.\n\nPerturbation: knockdown of " + pert + "\nCell line: " + cell +
             "\nTarget gene: " + gene + "\n\nThink step by step inside <think></think>, then give the answer inside <answer></answer>.";
    default:
      return "<think>\n" + pert + " encodes a regulator; its loss in " + cell + " would affect " + gene +
             " through downstream signalling.\n</think>\n<answer>" + rng.pick(kLabels) + "</answer>";
  }
}

std::vector<std::string> oracle_strings(size_t n, uint64_t seed, const std::vector<std::string>& specials, bool valid_only) {
  Rng rng(seed);
  std::vector<std::string> out;
  // Every fixed fragment once on its own, then random mixtures.
  for (const auto* list : {&kScripts, &kDecomposed, &kEmoji, &kContractions, &kWhitespace, &kTags})
    for (const auto& s : *list) out.push_back(s);
  if (!valid_only)
    for (const auto& s : kInvalid) out.push_back("a" + s + "b");
  for (const auto& s : specials) out.push_back("x " + s + " y");
  for (size_t len = 1; len <= 40; ++len) out.push_back(std::string(len, '7'));
  for (size_t len = 1; len <= 16; ++len) out.push_back(std::string(len, ' ') + "word" + std::string(len, ' '));
  out.push_back("");
  while (out.size() < n) {
    std::string s;
    for (size_t k = 0, parts = 1 + rng.below(6); k < parts; ++k) s += fragment(rng, specials, valid_only);
    out.push_back(std::move(s));
  }
  out.resize(n);
  return out;
}

std::vector<std::string> perturbqa_gene_symbols(size_t max_count) {
  std::string dir;
  if (const char* env = std::getenv("PERTURBQA_DIR")) dir = env;
  else dir = std::string(SYNTHPERT_SOURCE_DIR) + "/../shared/perturbqa";
  std::ifstream f(dir + "/k562-de.csv");
  std::set<std::string> genes;
  std::string line;
  std::getline(f, line);  // header pert,gene,label,split
  while (genes.size() < max_count && std::getline(f, line)) {
    const size_t c1 = line.find(','), c2 = line.find(',', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    genes.insert(line.substr(0, c1));
    genes.insert(line.substr(c1 + 1, c2 - c1 - 1));
  }
  return {genes.begin(), genes.end()};
}

}  // namespace synthpert::test
