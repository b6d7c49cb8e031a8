#include "tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>

#include <vector>

#include "common/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode_case.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

using json = nlohmann::json;

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string normalize(std::string text) const override {
    for (const auto& p : parts_) text = p->normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// Prepends a fixed string to every non-empty piece (Llama-2's "▁").
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string text) const override {
    return text.empty() ? text : prefix_ + text;
  }

 private:
  std::string prefix_;
};

class ReplaceStringNormalizer : public Normalizer {
 public:
  ReplaceStringNormalizer(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  std::string normalize(std::string text) const override {
    if (from_.empty() || text.find(from_) == std::string::npos) return text;
    std::string out;
    out.reserve(text.size() + text.size() / 4);
    size_t pos = 0;
    for (size_t hit; (hit = text.find(from_, pos)) != std::string::npos; pos = hit + from_.size()) {
      out.append(text, pos, hit - pos);
      out += to_;
    }
    out.append(text, pos, std::string::npos);
    return out;
  }

 private:
  std::string from_, to_;
};

class ReplaceRegexNormalizer : public Normalizer {
 public:
  ReplaceRegexNormalizer(const std::string& pattern, std::string to)
      : re_(pattern, "tokenizer.json normalizer Replace"), to_(std::move(to)) {}
  std::string normalize(std::string text) const override {
    std::string out;
    size_t pos = 0;
    re_.for_each_match(text, [&](size_t s, size_t e) {
      out.append(text, pos, s - pos);
      out += to_;
      pos = e;
    });
    out.append(text, pos, std::string::npos);
    return out;
  }

 private:
  Regex re_;
  std::string to_;
};

// Unicode normalization forms through ICU.
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(const std::string& form) {
    UErrorCode st = U_ZERO_ERROR;
    if (form == "NFC") norm_ = icu::Normalizer2::getNFCInstance(st);
    else if (form == "NFD") norm_ = icu::Normalizer2::getNFDInstance(st);
    else if (form == "NFKC") norm_ = icu::Normalizer2::getNFKCInstance(st);
    else norm_ = icu::Normalizer2::getNFKDInstance(st);
    SP_CHECK_INPUT(U_SUCCESS(st) && norm_, "ICU ", form, " normalizer is unavailable: ", u_errorName(st));
  }
  std::string normalize(std::string text) const override {
    UErrorCode st = U_ZERO_ERROR;
    const icu::StringPiece sp(text.data(), static_cast<int32_t>(text.size()));
    if (norm_->isNormalizedUTF8(sp, st) && U_SUCCESS(st)) return text;
    std::string out;
    icu::StringByteSink<std::string> sink(&out);
    st = U_ZERO_ERROR;
    norm_->normalizeUTF8(0, sp, sink, nullptr, st);
    SP_CHECK_INPUT(U_SUCCESS(st), "Unicode normalization failed: ", u_errorName(st));
    return out;
  }

 private:
  const icu::Normalizer2* norm_ = nullptr;
};

// Lowercases each code point by its full mapping, as the tokenizers library
// does (İ becomes two code points; no final-sigma context).
class LowercaseNormalizer : public Normalizer {
 public:
  std::string normalize(std::string text) const override { return lowercase_each_code_point(text); }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string text) const override {
    std::u32string u = utf8_to_u32(text);
    size_t b = 0, e = u.size();
    if (left_) while (b < e && is_unicode_whitespace(u[b])) ++b;
    if (right_) while (e > b && is_unicode_whitespace(u[e - 1])) --e;
    return u32_to_utf8(std::u32string_view(u).substr(b, e - b));
  }

 private:
  bool left_, right_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& c) {
  if (c.is_null()) return nullptr;
  SP_CHECK_INPUT(c.is_object() && c.contains("type"), "tokenizer.json: normalizer must be an object with a \"type\"");
  const std::string type = c.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& p : c.at("normalizers"))
      if (auto n = make_normalizer(p)) parts.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(c.at("prepend").get<std::string>());
  if (type == "Replace") {
    const auto& pat = c.at("pattern");
    const std::string to = c.at("content").get<std::string>();
    if (pat.contains("String")) return std::make_unique<ReplaceStringNormalizer>(pat.at("String").get<std::string>(), to);
    SP_CHECK_INPUT(pat.contains("Regex"), "tokenizer.json: Replace normalizer pattern needs \"String\" or \"Regex\"");
    return std::make_unique<ReplaceRegexNormalizer>(pat.at("Regex").get<std::string>(), to);
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") return std::make_unique<UnicodeNormalizer>(type);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip") return std::make_unique<StripNormalizer>(c.value("strip_left", true), c.value("strip_right", true));
  throw InputError("tokenizer.json: normalizer type '" + type +
                   "' is not supported (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip)");
}

}  // namespace synthpert::tokenizer
