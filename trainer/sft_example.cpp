#include "trainer/sft_example.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_input.h"

namespace synthpert::trainer {

using nlohmann::json;

Overlong parse_overlong(const std::string& name) {
  if (name == "truncate") return Overlong::kTruncate;
  if (name == "drop") return Overlong::kDrop;
  if (name == "error") return Overlong::kError;
  throw InputError(str_cat("--overlong: expected truncate, drop or error, got '", name, "'"));
}

int64_t count_targets(const SftExample& e) {
  int64_t n = 0;
  for (size_t t = 1; t < e.loss_mask.size(); ++t) n += e.loss_mask[t] != 0;
  return n;
}

std::vector<SftExample> read_pretokenized_jsonl(const std::string& path) {
  std::ifstream in(path);
  SP_CHECK_INPUT(in.good(), path, ": cannot open for reading");
  std::vector<SftExample> out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = str_cat(path, ":", lineno);
    const json j = parse_json_input(line, where);
    SP_CHECK_INPUT(j.is_object() && j.contains("ids") && j["ids"].is_array(), where,
                   ": expected an object with an \"ids\" array");
    SP_CHECK_INPUT(j.contains("loss_mask") && j["loss_mask"].is_array(), where,
                   ": missing \"loss_mask\" array (1 for tokens the model learns, 0 otherwise)");
    SftExample e;
    e.origin = where;
    for (const auto& v : j["ids"]) {
      SP_CHECK_INPUT(v.is_number_integer(), where, ": \"ids\" must hold integers");
      e.ids.push_back(v.get<int64_t>());
    }
    for (const auto& v : j["loss_mask"]) {
      SP_CHECK_INPUT(v.is_boolean() || (v.is_number_integer() && (v == 0 || v == 1)), where,
                     ": \"loss_mask\" must hold 0/1 or booleans");
      e.loss_mask.push_back(v.is_boolean() ? v.get<bool>() : v.get<int>());
    }
    out.push_back(std::move(e));
  }
  SP_CHECK_INPUT(!out.empty(), path, ": no examples");
  return out;
}

SftDataset finalize_examples(std::vector<SftExample> examples, int64_t max_seq_len,
                             int64_t vocab_size, Overlong policy) {
  SP_CHECK_INPUT(max_seq_len >= 2, "--max-seq-len must be at least 2, got ", max_seq_len);
  SftDataset ds;
  for (auto& e : examples) {
    SP_CHECK_INPUT(e.ids.size() == e.loss_mask.size(), e.origin, ": ids has ", e.ids.size(),
                   " tokens but loss_mask has ", e.loss_mask.size());
    SP_CHECK_INPUT(e.ids.size() >= 2, e.origin, ": an example needs at least 2 tokens");
    for (int64_t id : e.ids)
      SP_CHECK_INPUT(id >= 0 && id < vocab_size, e.origin, ": token id ", id,
                     " is outside the model's vocabulary [0, ", vocab_size, ")");
    SP_CHECK_INPUT(count_targets(e) > 0, e.origin,
                   ": no loss tokens (empty assistant turn, or only the first token is masked in)");
    if (static_cast<int64_t>(e.ids.size()) > max_seq_len) {
      SP_CHECK_INPUT(policy != Overlong::kError, e.origin, ": ", e.ids.size(),
                     " tokens exceed --max-seq-len ", max_seq_len,
                     " (raise it, or pass --overlong truncate|drop)");
      if (policy == Overlong::kDrop) {
        ++ds.dropped;
        continue;
      }
      e.ids.resize(max_seq_len);
      e.loss_mask.resize(max_seq_len);
      SP_CHECK_INPUT(count_targets(e) > 0, e.origin, ": truncated to --max-seq-len ", max_seq_len,
                     " no assistant token is left to learn (raise --max-seq-len or pass --overlong drop)");
      e.truncated = true;
      ++ds.truncated;
    }
    ds.examples.push_back(std::move(e));
  }
  SP_CHECK_INPUT(!ds.examples.empty(), "no training examples left after applying --max-seq-len ",
                 max_seq_len);
  return ds;
}

}  // namespace synthpert::trainer
