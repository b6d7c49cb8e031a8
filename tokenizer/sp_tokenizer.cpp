#include "tokenizer/sp_tokenizer.h"

#include <algorithm>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace synthpert::tokenizer {

SpTokenizer::SpTokenizer(const std::string& model_path, const TokenizerConfig& config)
    : sp_(std::make_unique<SpModel>(model_path)) {
  const int n = sp_->piece_size();
  for (int id = 0; id < n; ++id) {
    if (!(sp_->is_control(id) || sp_->is_unknown(id))) continue;
    AddedToken t;
    t.id = id;
    t.content = sp_->id_to_piece(id);
    t.special = true;
    specials_.push_back(t);
  }
  if (config.added_tokens_decoder.is_object())
    for (auto it = config.added_tokens_decoder.begin(); it != config.added_tokens_decoder.end(); ++it) {
      const int64_t id = parse_token_id(it.key(), "tokenizer_config.json added_tokens_decoder");
      bool known = false;
      for (const auto& s : specials_) known = known || s.id == id;
      if (known || !it.value().contains("content")) continue;
      AddedToken t;
      t.id = id;
      t.content = it.value()["content"].get<std::string>();
      t.special = it.value().value("special", true);
      t.lstrip = it.value().value("lstrip", false);
      t.rstrip = it.value().value("rstrip", false);
      t.single_word = it.value().value("single_word", false);
      specials_.push_back(t);
    }
  std::vector<const AddedToken*> ptrs;
  for (size_t i = 0; i < specials_.size(); ++i) {
    special_by_id_.emplace(specials_[i].id, i);
    if (!specials_[i].content.empty()) ptrs.push_back(&specials_[i]);
  }
  matcher_ = AddedTokenMatcher(ptrs);

  if (config.bos_token) bos_id_ = token_to_id(*config.bos_token);
  if (!bos_id_ && sp_->bos_id() >= 0) bos_id_ = sp_->bos_id();
  if (config.eos_token)
    if (auto e = token_to_id(*config.eos_token)) eos_ids_.push_back(*e);
  if (eos_ids_.empty() && sp_->eos_id() >= 0) eos_ids_.push_back(sp_->eos_id());
  for (int64_t e : config.generation_eos_ids)
    if (std::find(eos_ids_.begin(), eos_ids_.end(), e) == eos_ids_.end()) eos_ids_.push_back(e);
  add_bos_ = config.add_bos_token.value_or(true);
  add_eos_ = config.add_eos_token.value_or(false);
  clean_up_ = config.clean_up_tokenization_spaces;
}

SpTokenizer::~SpTokenizer() = default;

std::vector<int64_t> SpTokenizer::encode(std::string_view input, bool add_special) const {
  const std::string text = sanitize_utf8(input);
  std::vector<int64_t> out;
  if (add_special && add_bos_ && bos_id_) out.push_back(*bos_id_);
  for (const auto& s : matcher_.split(text)) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    const std::vector<int> ids = sp_->encode(s.text);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  if (add_special && add_eos_ && !eos_ids_.empty()) out.push_back(eos_ids_.front());
  return out;
}

std::string SpTokenizer::decode_text(const std::vector<int64_t>& ids, bool skip_special) const {
  // Runs of ordinary pieces go through sentencepiece (which restores spaces);
  // special tokens are written as their text unless skipped. A skipped one
  // does not end the run: sentencepiece drops the leading space of a run's
  // first piece, and "hello</s> world" skipped reads "hello world" in
  // transformers (fast and slow tokenizers alike), not "helloworld".
  std::string out;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    out += sp_->decode(run);
    run.clear();
  };
  for (int64_t id : ids) {
    SP_CHECK_INPUT(id >= 0 && id < vocab_size(), "token id ", id, " is outside the vocabulary (size ", vocab_size(), ")");
    const auto s = special_by_id_.find(id);
    if (s == special_by_id_.end()) {
      run.push_back(static_cast<int>(id));
      continue;
    }
    if (skip_special && specials_[s->second].special) continue;
    flush();
    out += specials_[s->second].content;
  }
  flush();
  return out;
}

int64_t SpTokenizer::vocab_size() const {
  int64_t n = sp_->piece_size();
  for (const auto& s : specials_) n = std::max(n, s.id + 1);
  return n;
}

std::optional<int64_t> SpTokenizer::token_to_id(std::string_view token) const {
  for (const auto& s : specials_)
    if (s.content == token) return s.id;
  const int id = sp_->piece_to_id(token);
  // PieceToId answers unk for unknown pieces; only the unk piece itself maps there.
  if (id == sp_->unk_id() && sp_->id_to_piece(id) != token) return std::nullopt;
  return id;
}

std::optional<std::string> SpTokenizer::id_to_token(int64_t id) const {
  const auto s = special_by_id_.find(id);
  if (s != special_by_id_.end()) return specials_[s->second].content;
  if (id < 0 || id >= sp_->piece_size()) return std::nullopt;
  return sp_->id_to_piece(static_cast<int>(id));
}

bool SpTokenizer::is_special(int64_t id) const {
  const auto s = special_by_id_.find(id);
  return s != special_by_id_.end() && specials_[s->second].special;
}

}  // namespace synthpert::tokenizer
