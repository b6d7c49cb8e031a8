// libFuzzer target: the training files `synthpert train` reads. The first
// input byte picks the reader, the rest is the file: pre-tokenized JSONL
// (then finalize_examples under a length limit and overlong policy the
// second byte picks), traces JSONL (then validate_conversation) or a
// SynthPert CSV. Refusing the file with an InputError is fine; any other
// exception or a crash is a bug, and a finalized dataset must keep
// finalize_examples' promises (trainer/sft_example.h).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "tests/fuzz/fuzz_files.h"
#include "trainer/conversations.h"
#include "trainer/sft_example.h"

namespace {

using namespace synthpert::trainer;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "finalize_examples broke its promise: %s\n", what);
    std::abort();
  }
}

void check_finalized(std::vector<SftExample> examples, uint8_t knobs) {
  const int64_t max_len = 1 + knobs % 24, vocab = 40;
  const Overlong policy = knobs / 24 % 3 == 0   ? Overlong::kTruncate
                          : knobs / 24 % 3 == 1 ? Overlong::kDrop
                                                : Overlong::kError;
  const size_t given = examples.size();
  const SftDataset d = finalize_examples(std::move(examples), max_len, vocab, policy);
  require(d.examples.size() + static_cast<size_t>(d.dropped) == given, "kept + dropped == given");
  int64_t truncated = 0;
  for (const auto& e : d.examples) {
    require(!e.ids.empty() && static_cast<int64_t>(e.ids.size()) <= max_len, "1 <= length <= max_seq_len");
    require(e.loss_mask.size() == e.ids.size(), "a mask entry per token");
    for (int64_t id : e.ids) require(id >= 0 && id < vocab, "ids inside the vocabulary");
    require(count_targets(e) >= 1, "a target after the first token");
    truncated += e.truncated;
  }
  require(truncated == d.truncated, "truncated count");
  require(policy == Overlong::kTruncate || d.truncated == 0, "truncation only under kTruncate");
  require(policy == Overlong::kDrop || d.dropped == 0, "drops only under kDrop");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string path = synthpert::fuzz::scratch_folder("fuzz_training_files") + "/input";
  synthpert::fuzz::write_file_or_abort(path, reinterpret_cast<const char*>(data) + 2, size - 2);
  try {
    switch (data[0] % 3) {
      case 0:
        check_finalized(read_pretokenized_jsonl(path), data[1]);
        break;
      case 1:
        for (const auto& c : read_traces_jsonl(path)) validate_conversation(c);
        break;
      default:
        for (const auto& c : read_synthpert_csv(path)) validate_conversation(c);
        break;
    }
  } catch (const synthpert::InputError&) {
  }
  return 0;
}
