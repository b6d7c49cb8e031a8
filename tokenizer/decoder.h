// Decoders of tokenizer.json ("decoder"): turn the token strings of an id
// sequence back into text. Each decoder maps the list of token strings to a
// new list (as Hugging Face's decode_chain does); the result is their
// concatenation. Supported: Sequence, ByteLevel, Metaspace, Replace, Fuse,
// Strip, ByteFallback. Any other type is an InputError naming it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthpert::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& config);

}  // namespace synthpert::tokenizer
