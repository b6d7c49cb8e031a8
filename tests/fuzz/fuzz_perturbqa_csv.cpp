// libFuzzer target: a PerturbQA cell line's two CSVs, which a user may point
// --data at. The input up to its first NUL byte is fuzz-de.csv, the rest
// fuzz-dir.csv (empty without a NUL). load_cell_line refuses them with an
// InputError, or keeps the promises of perturb/data.h: one row per de record,
// names non-empty UTF-8 without the CSV's separators, "inconsistent" counting
// DE rows without a direction, and no negative counts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "common/utf8.h"
#include "perturb/data.h"
#include "tests/fuzz/fuzz_files.h"

namespace {

bool plain_name(const std::string& s) {
  return !s.empty() && synthpert::is_valid_utf8(s) && s.find_first_of(",\"\n") == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synthpert::perturb;
  using synthpert::fuzz::write_file_or_abort;
  const std::string& folder = synthpert::fuzz::scratch_folder("fuzz_perturbqa_csv");
  const char* text = reinterpret_cast<const char*>(data);
  size_t split = 0;
  while (split < size && text[split] != '\0') ++split;
  write_file_or_abort(synthpert::path_join(folder, "fuzz-de.csv"), text, split);
  write_file_or_abort(synthpert::path_join(folder, "fuzz-dir.csv"), text + split + (split < size), size - split - (split < size));
  try {
    const CellData d = load_cell_line(folder, "fuzz");
    int64_t nde_rows = 0;
    for (const Row& r : d.rows) {
      if (r.cell_type != "fuzz" || !plain_name(r.pert) || !plain_name(r.gene)) std::abort();
      nde_rows += r.label == Label::kNde;
    }
    if (d.inconsistent < 0 || d.inconsistent > nde_rows || d.dir_without_de < 0) std::abort();
  } catch (const synthpert::InputError&) {
  }
  return 0;
}
