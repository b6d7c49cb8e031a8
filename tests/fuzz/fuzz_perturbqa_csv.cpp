// libFuzzer target: a PerturbQA cell line's two CSVs, which a user may point
// --data at. The input up to its first NUL byte is fuzz-de.csv, the rest
// fuzz-dir.csv (empty without a NUL). load_cell_line refuses them with an
// InputError, or keeps the promises of perturb/data.h: one row per de record,
// names non-empty UTF-8 without the CSV's separators, "inconsistent" counting
// DE rows without a direction, and no negative counts.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "common/utf8.h"
#include "perturb/data.h"

namespace {

const std::string& folder() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/fuzz_perturbqa_csv.XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    return std::string(tmpl);
  }();
  return dir;
}

void write(const std::string& path, const char* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) std::abort();
}

bool plain_name(const std::string& s) {
  return !s.empty() && synthpert::is_valid_utf8(s) && s.find_first_of(",\"\n") == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace synthpert::perturb;
  const char* text = reinterpret_cast<const char*>(data);
  size_t split = 0;
  while (split < size && text[split] != '\0') ++split;
  write(synthpert::path_join(folder(), "fuzz-de.csv"), text, split);
  write(synthpert::path_join(folder(), "fuzz-dir.csv"), text + split + (split < size), size - split - (split < size));
  try {
    const CellData d = load_cell_line(folder(), "fuzz");
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
