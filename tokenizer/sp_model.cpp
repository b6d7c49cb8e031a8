#include "tokenizer/sp_model.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>

#include "common/error.h"
#include "common/fs.h"
#include "tokenizer/sp_shim.h"

namespace synthpert::tokenizer {
namespace {

struct ShimApi {
  decltype(&synthpert_spm_load) load;
  decltype(&synthpert_spm_free) free;
  decltype(&synthpert_spm_encode) encode;
  decltype(&synthpert_spm_decode) decode;
  decltype(&synthpert_spm_id_to_piece) id_to_piece;
  decltype(&synthpert_spm_piece_to_id) piece_to_id;
  decltype(&synthpert_spm_query) query;
};

std::string executable_dir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

const ShimApi& api() {
  static ShimApi a{};
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("SYNTHPERT_SPM_MODULE")) candidates.emplace_back(env);
    candidates.emplace_back(SYNTHPERT_SPM_MODULE_PATH);
    candidates.push_back(executable_dir() + "/libsynthpert_spm.so");
    std::string errors;
    void* lib = nullptr;
    for (const auto& c : candidates) {
      if (!path_exists(c)) continue;
      lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (lib) break;
      errors += std::string(" ") + dlerror();
    }
    SP_CHECK_INPUT(lib, "sentencepiece: cannot load libsynthpert_spm.so (set SYNTHPERT_SPM_MODULE to its path)", errors);
    auto sym = [&](const char* name) {
      void* s = dlsym(lib, name);
      SP_CHECK_INPUT(s, "sentencepiece module lacks ", name);
      return s;
    };
    a.load = reinterpret_cast<decltype(a.load)>(sym("synthpert_spm_load"));
    a.free = reinterpret_cast<decltype(a.free)>(sym("synthpert_spm_free"));
    a.encode = reinterpret_cast<decltype(a.encode)>(sym("synthpert_spm_encode"));
    a.decode = reinterpret_cast<decltype(a.decode)>(sym("synthpert_spm_decode"));
    a.id_to_piece = reinterpret_cast<decltype(a.id_to_piece)>(sym("synthpert_spm_id_to_piece"));
    a.piece_to_id = reinterpret_cast<decltype(a.piece_to_id)>(sym("synthpert_spm_piece_to_id"));
    a.query = reinterpret_cast<decltype(a.query)>(sym("synthpert_spm_query"));
  });
  return a;
}

// Calls fill(buffer, capacity) -> full size, growing the buffer once if needed.
template <typename T, typename Fill>
std::vector<T> read_sized(Fill fill, const char* what) {
  std::vector<T> buf(256);
  long n = fill(buf.data(), buf.size());
  SP_CHECK_INPUT(n >= 0, "sentencepiece ", what, " failed");
  if (static_cast<size_t>(n) > buf.size()) {
    buf.resize(static_cast<size_t>(n));
    n = fill(buf.data(), buf.size());
    SP_CHECK_INPUT(n >= 0, "sentencepiece ", what, " failed");
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace

SpModel::SpModel(const std::string& model_path) {
  char err[512] = {0};
  handle_ = api().load(model_path.c_str(), err, sizeof err);
  SP_CHECK_INPUT(handle_, model_path, ": not a sentencepiece model (", err, ")");
}

SpModel::~SpModel() {
  if (handle_) api().free(handle_);
}

std::vector<int> SpModel::encode(std::string_view text) const {
  return read_sized<int>([&](int* b, size_t cap) { return api().encode(handle_, text.data(), text.size(), b, cap); }, "encode");
}

std::string SpModel::decode(const std::vector<int>& ids) const {
  const auto v = read_sized<char>([&](char* b, size_t cap) { return api().decode(handle_, ids.data(), ids.size(), b, cap); }, "decode");
  return std::string(v.begin(), v.end());
}

std::string SpModel::id_to_piece(int id) const {
  const auto v = read_sized<char>([&](char* b, size_t cap) { return api().id_to_piece(handle_, id, b, cap); }, "id_to_piece");
  return std::string(v.begin(), v.end());
}

int SpModel::piece_to_id(std::string_view piece) const { return api().piece_to_id(handle_, piece.data(), piece.size()); }
int SpModel::piece_size() const { return api().query(handle_, kSpmPieceSize, 0); }
bool SpModel::is_control(int id) const { return api().query(handle_, kSpmIsControl, id) == 1; }
bool SpModel::is_unknown(int id) const { return api().query(handle_, kSpmIsUnknown, id) == 1; }
int SpModel::bos_id() const { return api().query(handle_, kSpmBosId, 0); }
int SpModel::eos_id() const { return api().query(handle_, kSpmEosId, 0); }
int SpModel::unk_id() const { return api().query(handle_, kSpmUnkId, 0); }

}  // namespace synthpert::tokenizer
