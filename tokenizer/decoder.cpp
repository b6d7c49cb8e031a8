#include "tokenizer/decoder.h"

#include "common/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

using json = nlohmann::json;

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// Maps byte-level characters back to bytes. A token holding any character
// outside the table (an added token like "<|im_end|>" with a space, say)
// contributes its own UTF-8 bytes. Invalid UTF-8 in the joined bytes becomes
// U+FFFD per maximal subpart, like Rust's from_utf8_lossy.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      const std::u32string cps = utf8_to_u32(t);
      std::string mapped;
      bool ok = true;
      for (char32_t c : cps) {
        const int b = char_to_byte(c);
        if (b < 0) {
          ok = false;
          break;
        }
        mapped.push_back(static_cast<char>(b));
      }
      bytes += ok ? mapped : t;
    }
    tokens.assign(1, sanitize_utf8(bytes));
  }
};

// Turns the replacement character back into spaces; in the first token it is
// dropped entirely unless the prefix was never prepended (Hugging Face's rule).
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, rep_.size(), rep_) == 0) {
          if (!(i == 0 && strip_first_)) out += ' ';
          p += rep_.size();
        } else {
          out += t[p++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string rep_;
  bool strip_first_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (from_.empty()) return;
    for (auto& t : tokens) {
      std::string out;
      size_t pos = 0;
      for (size_t hit; (hit = t.find(from_, pos)) != std::string::npos; pos = hit + from_.size()) {
        out.append(t, pos, hit - pos);
        out += to_;
      }
      out.append(t, pos, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string from_, to_;
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++k) b += content_.size();
      for (size_t k = 0; k < stop_ && e >= b + content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0; ++k)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

// Turns runs of <0xXX> tokens into the text their bytes spell; a run that is
// not valid UTF-8 becomes one U+FFFD per byte (Hugging Face's rule).
class ByteFallbackDecoder : public Decoder {
  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // The byte of "XX" as Rust's u8::from_str_radix(XX, 16) reads it (which
  // tokenizers calls): two hex digits, or '+' and one; -1 for anything else.
  static int hex_byte(char a, char b) {
    const int lo = hex_digit(b);
    if (lo < 0) return -1;
    if (a == '+') return lo;
    const int hi = hex_digit(a);
    return hi < 0 ? -1 : hi * 16 + lo;
  }

 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending_count; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& t : tokens) {
      const int byte = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' ? hex_byte(t[3], t[4]) : -1;
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& c) {
  if (c.is_null()) return nullptr;
  SP_CHECK_INPUT(c.is_object() && c.contains("type"), "tokenizer.json: decoder must be an object with a \"type\"");
  const std::string type = c.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& p : c.at("decoders"))
      if (auto d = make_decoder(p)) parts.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    bool strip_first = true;
    if (c.contains("prepend_scheme")) strip_first = c["prepend_scheme"].get<std::string>() != "never";
    else if (c.contains("add_prefix_space")) strip_first = c["add_prefix_space"].get<bool>();
    return std::make_unique<MetaspaceDecoder>(metaspace_replacement(c), strip_first);
  }
  if (type == "Replace") {
    const auto& pat = c.at("pattern");
    SP_CHECK_INPUT(pat.contains("String"), "tokenizer.json: Replace decoder supports String patterns only");
    return std::make_unique<ReplaceDecoder>(pat.at("String").get<std::string>(), c.at("content").get<std::string>());
  }
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(c.at("content").get<std::string>(), c.value("start", size_t{0}), c.value("stop", size_t{0}));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  throw InputError("tokenizer.json: decoder type '" + type +
                   "' is not supported (supported: Sequence, ByteLevel, Metaspace, Replace, Fuse, Strip, ByteFallback)");
}

}  // namespace synthpert::tokenizer
