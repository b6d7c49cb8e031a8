// Files for the fuzz targets whose parser reads from disk: one scratch folder
// per target process, and writes that abort (a harness failure, not a finding)
// when the disk refuses them.
#pragma once

#include <stdlib.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace synthpert::fuzz {

// "/tmp/NAME.XXXXXX", made on the first call and the same after; removed when
// the process exits normally (libFuzzer's runs end in exit()), kept after a
// crash.
inline const std::string& scratch_folder(const char* name) {
  struct Folder {
    std::string path;
    explicit Folder(const char* name) : path(std::string("/tmp/") + name + ".XXXXXX") {
      if (!mkdtemp(path.data())) std::abort();
    }
    ~Folder() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Folder folder(name);
  return folder.path;
}

inline void write_file_or_abort(const std::string& path, const char* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) std::abort();
}

}  // namespace synthpert::fuzz
