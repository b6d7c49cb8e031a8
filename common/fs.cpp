#include "common/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace synthpert {

std::string read_file(const std::string& path) {
  // A folder opens as a stream that reads nothing, which would pass for an
  // empty file.
  std::error_code ec;
  SP_CHECK_INPUT(!std::filesystem::is_directory(path, ec), path, ": is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  SP_CHECK_INPUT(in.good(), path, ": cannot open for reading (", std::strerror(errno), ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_text_file(const std::string& path) {
  std::string text = read_file(path);
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  return text;
}

std::string read_complete_lines(const std::string& path, bool* cut) {
  std::string text = read_file(path);
  const size_t end = text.rfind('\n');
  const size_t keep = end == std::string::npos ? 0 : end + 1;
  if (cut) *cut = keep != text.size();
  if (keep != text.size()) {
    std::error_code ec;
    std::filesystem::resize_file(path, keep, ec);
    SP_CHECK_INPUT(!ec, path, ": cannot cut its torn last line (", ec.message(), ")");
    text.resize(keep);
  }
  return text;
}

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  SP_CHECK_INPUT(!ec, path, ": cannot create folder (", ec.message(), ")");
}

bool path_exists(const std::string& path) { return std::filesystem::exists(path); }

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  const auto ca = std::filesystem::weakly_canonical(std::filesystem::absolute(a), ec);
  const auto cb = std::filesystem::weakly_canonical(std::filesystem::absolute(b), ec);
  return ec ? a == b : ca == cb;
}

std::string path_join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

void write_file_atomic(const std::string& path, std::string_view data) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  SP_CHECK_INPUT(fd >= 0, tmp, ": cannot open for writing (", std::strerror(errno), ")");
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw InputError(str_cat(tmp, ": write failed (", why, ")"));
    }
    done += static_cast<size_t>(n);
  }
  // Errors a full disk or a network filesystem reports only now; the
  // temporary file never stays behind.
  const bool synced = ::fsync(fd) == 0;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw InputError(str_cat(path, !synced ? ": fsync of " : !closed ? ": close of " : ": rename from ", tmp,
                             " failed (", why, ")"));
  }
}

}  // namespace synthpert
