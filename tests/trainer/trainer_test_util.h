// Helpers for trainer tests: an odd-shaped tiny model, random SFT examples,
// JSONL files and running the synthpert binary.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/engine/engine_test_util.h"
#include "trainer/sft_example.h"

namespace synthpert::test {

// hidden 72, 3 query heads sharing 1 KV head (head dim 24), MLP 100,
// vocabulary 101, 2 layers, untied head: no size is a power of two.
inline engine::ModelConfig odd_config() {
  engine::ModelConfig c;
  c.arch = engine::Arch::kLlama;
  c.vocab_size = 101;
  c.hidden_size = 72;
  c.intermediate_size = 100;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 1;
  c.head_dim = 24;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-5;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

inline void make_model(const std::string& dir, uint64_t seed = 7,
                       const engine::ModelConfig& c = odd_config()) {
  engine::InitOptions o;
  o.seed = seed;
  o.jitter = true;
  engine::init_model(c, dir, o);
}

// Examples of length [min_len, max_len] whose loss starts after a random
// prompt, as assistant tokens after a user turn.
inline std::vector<trainer::SftExample> random_examples(int64_t n, int64_t vocab, uint64_t seed,
                                                        int64_t min_len = 5, int64_t max_len = 24) {
  std::vector<trainer::SftExample> out;
  for (int64_t i = 0; i < n; ++i) {
    const auto r = random_ids(3, 1 << 20, seed * 1000 + i);
    const int64_t len = min_len + r[0] % (max_len - min_len + 1);
    const int64_t prompt = 1 + r[1] % (len - 1);
    trainer::SftExample e;
    e.ids = random_ids(len, vocab, seed * 7919 + i);
    e.loss_mask.assign(len, 0);
    for (int64_t t = prompt; t < len; ++t) e.loss_mask[t] = 1;
    e.origin = "example " + std::to_string(i);
    out.push_back(e);
  }
  return out;
}

inline void write_pretokenized(const std::string& path, const std::vector<trainer::SftExample>& ex) {
  std::ofstream f(path);
  for (const auto& e : ex) f << nlohmann::json{{"ids", e.ids}, {"loss_mask", e.loss_mask}}.dump() << "\n";
}

inline std::vector<nlohmann::json> metrics_lines(const std::string& path, const char* key) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) {
      auto j = nlohmann::json::parse(line);
      if (j.contains(key)) out.push_back(j);
    }
  return out;
}

// A TCP port that was free a moment ago (the kernel picks it).
inline int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

}  // namespace synthpert::test
