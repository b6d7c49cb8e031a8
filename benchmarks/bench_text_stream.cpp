// Streaming detokenization of one long reply: the server's TextStream, which
// decodes a window of recent tokens per token, against decoding the whole
// token list at every token (what the stream did before, kept here as the
// peer). Same tokenizer, same ids, same process; both must produce the same
// text, or the run fails.
//
// Usage: bench_text_stream TOKENIZER_DIR --mode ours|peer [--tokens 1024,4096,8192] [--reps 3]
// The reply is real prose: the project's docs/*.md, encoded and cut to N
// tokens. Prints {"rows":[{"name","unit","value"}]} with the median ms per
// reply.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "apps/server/text_stream.h"
#include "common/fs.h"
#include "tokenizer/tokenizer.h"

using Clock = std::chrono::steady_clock;
using synthpert::server::TextStream;
using synthpert::tokenizer::Tokenizer;

namespace {

// The stream before windows: decode everything, release the new suffix.
std::string whole_list_stream(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::vector<int64_t> so_far;
  std::string released;
  for (int64_t id : ids) {
    so_far.push_back(id);
    const std::string full = tok.decode_generated(so_far);
    if (full.size() > released.size() && full.compare(0, released.size(), released) == 0) {
      // Hold back an unfinished character (U+FFFD at the end), as the stream does.
      size_t end = full.size();
      while (end >= 3 && full.compare(end - 3, 3, "\xEF\xBF\xBD") == 0) end -= 3;
      if (end > released.size()) released += full.substr(released.size(), end - released.size());
    }
  }
  const std::string full = tok.decode_generated(so_far);
  if (full.compare(0, released.size(), released) == 0) released = full;
  return released;
}

std::string windowed_stream(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  TextStream s([&](const std::vector<int64_t>& w) { return tok.decode_generated(w); }, {});
  std::string out;
  for (int64_t id : ids) out += s.push(id);
  out += s.finish();
  return out;
}

std::vector<int64_t> reply_ids(const Tokenizer& tok, size_t n) {
  std::string prose;
  for (const char* f : {"docs/traces.md", "docs/perturbqa.md", "docs/trainer.md", "docs/server.md"})
    prose += synthpert::read_file(std::string(SYNTHPERT_SOURCE_DIR) + "/" + f);
  std::vector<int64_t> all = tok.encode(prose, false);
  while (all.size() < n) {
    const std::vector<int64_t> again = all;
    all.insert(all.end(), again.begin(), again.end());
  }
  all.resize(n);
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_text_stream TOKENIZER_DIR --mode ours|peer [--tokens N,N] [--reps R]\n");
    return 2;
  }
  std::string mode, tokens_arg = "1024,4096,8192";
  int reps = 3;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--mode") mode = v;
    else if (k == "--tokens") tokens_arg = v;
    else if (k == "--reps") reps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "bench_text_stream: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if ((mode != "ours" && mode != "peer") || reps < 1) {
    std::fprintf(stderr, "bench_text_stream: --mode ours|peer and --reps >= 1 are required\n");
    return 2;
  }
  const auto tok = Tokenizer::load(argv[1]);
  std::string rows;
  std::stringstream list(tokens_arg);
  for (std::string item; std::getline(list, item, ',');) {
    const size_t n = std::stoul(item);
    const std::vector<int64_t> ids = reply_ids(*tok, n);
    const std::string expected = tok->decode_generated(ids);
    std::vector<double> ms;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      const std::string text = mode == "ours" ? windowed_stream(*tok, ids) : whole_list_stream(*tok, ids);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (text != expected) {
        std::fprintf(stderr, "bench_text_stream: the %s stream's text differs from the decode of the reply\n",
                     mode.c_str());
        return 1;
      }
    }
    std::sort(ms.begin(), ms.end());
    char row[160];
    std::snprintf(row, sizeof row, "%s{\"name\":\"stream a %zu-token reply\",\"unit\":\"ms\",\"value\":%.3f}",
                  rows.empty() ? "" : ",", n, ms[ms.size() / 2]);
    rows += row;
  }
  std::printf("{\"rows\":[%s]}\n", rows.c_str());
  return 0;
}
