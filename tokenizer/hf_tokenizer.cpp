#include "tokenizer/hf_tokenizer.h"

#include <algorithm>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {
namespace {

using json = nlohmann::json;

AddedToken parse_added_token(const json& j, int64_t id, const std::string& where) {
  SP_CHECK_INPUT(j.is_object() && j.contains("content") && j["content"].is_string(), where,
                 ": added token ", id, " needs a \"content\" string");
  AddedToken t;
  t.id = id;
  t.content = j["content"].get<std::string>();
  t.special = j.value("special", false);
  t.lstrip = j.value("lstrip", false);
  t.rstrip = j.value("rstrip", false);
  t.single_word = j.value("single_word", false);
  // Hugging Face's default: special tokens are not normalized, others are.
  t.normalized = j.value("normalized", !t.special);
  return t;
}

// Tokenizer classes whose transformers implementation rebuilds the
// post-processor from add_bos_token / add_eos_token (defaults: BOS yes, EOS no).
bool rebuilds_template(const std::string& cls) {
  return cls == "LlamaTokenizer" || cls == "CodeLlamaTokenizer" || cls == "GemmaTokenizer";
}

}  // namespace

HfTokenizer::HfTokenizer(const json& j, const TokenizerConfig& config, const std::string& where) {
  SP_CHECK_INPUT(j.is_object() && j.contains("model"), where, ": no \"model\" object");
  const json& model = j["model"];
  const std::string type = model.value("type", std::string("BPE"));
  SP_CHECK_INPUT(type == "BPE", where, ": model type '", type, "' is not supported (only BPE; use tokenizer.model for sentencepiece Unigram models)");
  model_ = std::make_unique<BpeModel>(model);
  normalizer_ = make_normalizer(j.value("normalizer", json()));
  pre_tokenizer_ = make_pre_tokenizer(j.value("pre_tokenizer", json()));
  decoder_ = make_decoder(j.value("decoder", json()));

  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& a : j["added_tokens"]) {
      SP_CHECK_INPUT(a.contains("id") && a["id"].is_number_integer(), where, ": added token without an integer \"id\"");
      added_.push_back(parse_added_token(a, a["id"].get<int64_t>(), where));
    }
  // transformers also registers tokenizer_config.json's added_tokens_decoder.
  if (config.added_tokens_decoder.is_object())
    for (auto it = config.added_tokens_decoder.begin(); it != config.added_tokens_decoder.end(); ++it) {
      const int64_t id = parse_token_id(it.key(), "tokenizer_config.json added_tokens_decoder");
      bool known = false;
      for (const auto& a : added_) known = known || a.id == id;
      if (!known) added_.push_back(parse_added_token(it.value(), id, "tokenizer_config.json added_tokens_decoder"));
    }
  std::vector<const AddedToken*> raw, normalized;
  for (size_t i = 0; i < added_.size(); ++i) {
    SP_CHECK_INPUT(added_[i].id >= 0, where, ": added token '", added_[i].content, "' has a negative id ", added_[i].id);
    added_by_content_.emplace(added_[i].content, i);
    added_by_id_.emplace(added_[i].id, i);
    // Two passes whether or not there is a normalizer, as tokenizers does:
    // the raw tokens split the text first, the normalized ones the pieces
    // left, so a raw token wins an overlap with a normalized one.
    if (added_[i].normalized) {
      normalized_forms_.push_back(added_[i]);
      if (normalizer_) normalized_forms_.back().content = normalizer_->normalize(added_[i].content);
    } else {
      raw.push_back(&added_[i]);
    }
  }
  for (const AddedToken& t : normalized_forms_)  // complete: no reallocation moves them now
    if (!t.content.empty()) normalized.push_back(&t);
  raw_matcher_ = AddedTokenMatcher(raw);
  normalized_matcher_ = AddedTokenMatcher(normalized);

  read_post_processor(j.value("post_processor", json()), where);
  const auto id_of = [&](const std::optional<std::string>& tok) -> std::optional<int64_t> {
    if (!tok) return std::nullopt;
    return token_to_id(*tok);
  };
  bos_id_ = id_of(config.bos_token);
  if (!bos_id_) bos_id_ = config.generation_bos_id;
  if (auto e = id_of(config.eos_token)) eos_ids_.push_back(*e);
  for (int64_t e : config.generation_eos_ids)
    if (std::find(eos_ids_.begin(), eos_ids_.end(), e) == eos_ids_.end()) eos_ids_.push_back(e);
  if (rebuilds_template(config.tokenizer_class)) {
    prefix_.clear();
    suffix_.clear();
    if (config.add_bos_token.value_or(true) && bos_id_) prefix_.push_back(*bos_id_);
    if (config.add_eos_token.value_or(false) && !eos_ids_.empty()) suffix_.push_back(eos_ids_.front());
  }
  clean_up_ = config.clean_up_tokenization_spaces;
}

void HfTokenizer::read_post_processor(const json& pp, const std::string& where) {
  if (pp.is_null()) return;
  const std::string type = pp.value("type", std::string());
  if (type == "Sequence") {
    for (const auto& p : pp.at("processors")) read_post_processor(p, where);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets; ids are unchanged.
  } else if (type == "TemplateProcessing") {
    bool after_sequence = false;
    for (const auto& item : pp.at("single")) {
      if (item.contains("Sequence")) {
        SP_CHECK_INPUT(!after_sequence, where, ": TemplateProcessing single template has more than one sequence");
        after_sequence = true;
        continue;
      }
      SP_CHECK_INPUT(item.contains("SpecialToken"), where, ": TemplateProcessing item must be Sequence or SpecialToken");
      const std::string name = item["SpecialToken"].at("id").get<std::string>();
      const json& specials = pp.at("special_tokens");
      SP_CHECK_INPUT(specials.contains(name), where, ": TemplateProcessing uses special token '", name, "' it does not define");
      for (const auto& id : specials[name].at("ids")) (after_sequence ? suffix_ : prefix_).push_back(id.get<int64_t>());
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    prefix_.push_back(pp.at("cls").at(1).get<int64_t>());
    suffix_.push_back(pp.at("sep").at(1).get<int64_t>());
  } else {
    throw InputError(where + ": post_processor type '" + type +
                     "' is not supported (supported: Sequence, ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing)");
  }
}

void HfTokenizer::encode_text(const std::string& text, bool at_start, std::vector<int64_t>& out) const {
  if (text.empty()) return;
  std::vector<std::string> pieces{text};
  if (pre_tokenizer_) pre_tokenizer_->split(pieces, at_start);
  std::vector<int32_t> ids;
  for (const auto& p : pieces) model_->encode_word(p, ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<int64_t> HfTokenizer::encode(std::string_view input, bool add_special) const {
  const std::string text = sanitize_utf8(input);
  std::vector<int64_t> out;
  if (add_special) out = prefix_;
  std::vector<Section> sections = raw_matcher_.empty() ? std::vector<Section>{{text, -1, 0}} : raw_matcher_.split(text);
  for (auto& s : sections) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    const bool at_start = s.offset == 0;
    std::string t = normalizer_ ? normalizer_->normalize(std::move(s.text)) : std::move(s.text);
    if (normalized_matcher_.empty()) {
      encode_text(t, at_start, out);
      continue;
    }
    for (auto& sub : normalized_matcher_.split(t)) {
      if (sub.id >= 0) out.push_back(sub.id);
      else encode_text(sub.text, at_start && sub.offset == 0, out);
    }
  }
  if (add_special) out.insert(out.end(), suffix_.begin(), suffix_.end());
  return out;
}

std::string HfTokenizer::decode_text(const std::vector<int64_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    const auto a = added_by_id_.find(id);
    if (a != added_by_id_.end()) {
      if (!(skip_special && added_[a->second].special)) tokens.push_back(added_[a->second].content);
      continue;
    }
    const std::string_view tok = model_->id_to_token(id);
    SP_CHECK_INPUT(!tok.empty(), "token id ", id, " is outside the vocabulary (size ", vocab_size(), ")");
    tokens.emplace_back(tok);
  }
  std::string text;
  if (decoder_) {
    decoder_->decode_chain(tokens);
    for (const auto& t : tokens) text += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  return text;
}

int64_t HfTokenizer::vocab_size() const {
  int64_t n = model_->vocab_size();
  for (const auto& a : added_) n = std::max(n, a.id + 1);
  return n;
}

std::optional<int64_t> HfTokenizer::token_to_id(std::string_view token) const {
  const auto a = added_by_content_.find(std::string(token));
  if (a != added_by_content_.end()) return added_[a->second].id;
  if (auto id = model_->token_to_id(token)) return *id;
  return std::nullopt;
}

std::optional<std::string> HfTokenizer::id_to_token(int64_t id) const {
  const auto a = added_by_id_.find(id);
  if (a != added_by_id_.end()) return added_[a->second].content;
  const std::string_view tok = model_->id_to_token(id);
  if (tok.empty()) return std::nullopt;
  return std::string(tok);
}

bool HfTokenizer::is_special(int64_t id) const {
  const auto a = added_by_id_.find(id);
  return a != added_by_id_.end() && added_[a->second].special;
}

}  // namespace synthpert::tokenizer
