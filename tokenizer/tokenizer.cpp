#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sp_tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace synthpert::tokenizer {

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& dir) {
  const TokenizerConfig config = TokenizerConfig::load(dir);
  const std::string json_path = path_join(dir, "tokenizer.json");
  const std::string model_path = path_join(dir, "tokenizer.model");
  if (path_exists(json_path)) {
    const nlohmann::json j = read_json_input(json_path);
    return read_json_fields(json_path, [&]() -> std::unique_ptr<Tokenizer> {
      // A Unigram tokenizer.json (which this reader does not take) next to the
      // sentencepiece model it was converted from: read the model instead.
      const bool bpe =
          j.contains("model") && j["model"].is_object() && j["model"].value("type", std::string("BPE")) == "BPE";
      if (!bpe && path_exists(model_path)) return std::make_unique<SpTokenizer>(model_path, config);
      return std::make_unique<HfTokenizer>(j, config, json_path);
    });
  }
  if (path_exists(model_path)) return std::make_unique<SpTokenizer>(model_path, config);
  throw InputError(dir + ": holds neither tokenizer.json nor tokenizer.model");
}

std::vector<int64_t> merge_stop_ids(std::vector<int64_t> ids, const std::vector<int64_t>& more) {
  for (int64_t id : more)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  return ids;
}

std::vector<int64_t> Tokenizer::stop_ids(const std::vector<int64_t>& model_eos_ids) const {
  return merge_stop_ids(eos_ids_, model_eos_ids);
}

std::string Tokenizer::decode_generated(const std::vector<int64_t>& ids) const {
  std::vector<int64_t> known;
  known.reserve(ids.size());
  for (int64_t id : ids)
    if (id_to_token(id)) known.push_back(id);
  return decode_text(known, /*skip_special=*/true);
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f(from), t(to);
    std::string out;
    size_t pos = 0;
    for (size_t hit; (hit = text.find(f, pos)) != std::string::npos; pos = hit + f.size()) {
      out.append(text, pos, hit - pos);
      out += t;
    }
    out.append(text, pos, std::string::npos);
    text = std::move(out);
  }
  return text;
}

std::string Tokenizer::finish_decode(std::string text) const {
  return clean_up_ ? clean_up_tokenization(std::move(text)) : text;
}

}  // namespace synthpert::tokenizer
