#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "common/json_input.h"

namespace synthpert::engine {

using nlohmann::json;

namespace {
// Hugging Face's reader refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
}  // namespace

const char* st_dtype_name(StDType t) {
  switch (t) {
    case StDType::F64: return "F64";
    case StDType::F32: return "F32";
    case StDType::F16: return "F16";
    case StDType::BF16: return "BF16";
    case StDType::I64: return "I64";
    case StDType::I32: return "I32";
    case StDType::I16: return "I16";
    case StDType::I8: return "I8";
    case StDType::U8: return "U8";
    case StDType::BOOL: return "BOOL";
  }
  return "?";
}

size_t st_dtype_size(StDType t) {
  switch (t) {
    case StDType::F64: case StDType::I64: return 8;
    case StDType::F32: case StDType::I32: return 4;
    case StDType::F16: case StDType::BF16: case StDType::I16: return 2;
    case StDType::I8: case StDType::U8: case StDType::BOOL: return 1;
  }
  return 0;
}

StDType parse_st_dtype(const std::string& name, const std::string& context) {
  static const std::pair<const char*, StDType> table[] = {
      {"F64", StDType::F64}, {"F32", StDType::F32}, {"F16", StDType::F16},
      {"BF16", StDType::BF16}, {"I64", StDType::I64}, {"I32", StDType::I32},
      {"I16", StDType::I16}, {"I8", StDType::I8}, {"U8", StDType::U8}, {"BOOL", StDType::BOOL}};
  for (const auto& [n, t] : table)
    if (name == n) return t;
  throw InputError(str_cat(context, ": unsupported dtype '", name, "'"));
}

int64_t TensorInfo::numel() const {
  // An empty tensor's other dimensions may multiply past int64 (the header
  // check bounds the product only when no dimension is 0).
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

uint64_t TensorSpec::nbytes() const {
  uint64_t n = st_dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t available,
                                           uint64_t file_size, const std::string& src) {
  SP_CHECK_INPUT(file_size >= 8 && available >= 8, src, ": too short for a safetensors file (",
                 file_size, " bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  SP_CHECK_INPUT(n <= kMaxHeaderBytes, src, ": header length ", n, " exceeds the 100 MB limit");
  SP_CHECK_INPUT(n <= file_size - 8, src, ": header length ", n, " runs past the end of the file (",
                 file_size, " bytes)");
  SP_CHECK_INPUT(8 + n <= available, src, ": header not fully readable");
  const json j =
      parse_json_input(std::string_view(reinterpret_cast<const char*>(bytes + 8), n), str_cat(src, " header"));
  SP_CHECK_INPUT(j.is_object(), src, ": header must be a JSON object");

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = file_size - h.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      SP_CHECK_INPUT(v.is_object(), src, ": __metadata__ must be an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        SP_CHECK_INPUT(m.value().is_string(), src, ": __metadata__ value of '", m.key(),
                       "' must be a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string ctx = str_cat(src, ": tensor '", name, "'");
    SP_CHECK_INPUT(v.is_object(), ctx, ": entry must be an object");
    SP_CHECK_INPUT(v.contains("dtype") && v["dtype"].is_string(), ctx, ": missing string 'dtype'");
    SP_CHECK_INPUT(v.contains("shape") && v["shape"].is_array(), ctx, ": missing array 'shape'");
    SP_CHECK_INPUT(v.contains("data_offsets") && v["data_offsets"].is_array() &&
                       v["data_offsets"].size() == 2,
                   ctx, ": 'data_offsets' must be [begin, end]");
    TensorInfo t;
    t.name = name;
    t.dtype = parse_st_dtype(v["dtype"].get<std::string>(), ctx);
    uint64_t expect = st_dtype_size(t.dtype);
    for (const auto& d : v["shape"]) {
      SP_CHECK_INPUT(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
                     ctx, ": shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      // Each dimension fits int64 (as torch holds it) even beside a 0, which
      // would let any product through the overflow check.
      SP_CHECK_INPUT(dim <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), ctx,
                     ": shape entry ", dim, " is too large");
      SP_CHECK_INPUT(dim == 0 || expect <= std::numeric_limits<uint64_t>::max() / dim, ctx,
                     ": shape too large");
      expect *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto& o : v["data_offsets"])
      SP_CHECK_INPUT(o.is_number_unsigned() || (o.is_number_integer() && o.get<int64_t>() >= 0),
                     ctx, ": data_offsets must be non-negative integers");
    t.begin = v["data_offsets"][0].get<uint64_t>();
    t.end = v["data_offsets"][1].get<uint64_t>();
    SP_CHECK_INPUT(t.begin <= t.end, ctx, ": data_offsets begin ", t.begin, " > end ", t.end);
    SP_CHECK_INPUT(t.end <= data_size, ctx, ": data_offsets end ", t.end,
                   " runs past the data section (", data_size, " bytes; file truncated?)");
    SP_CHECK_INPUT(t.end - t.begin == expect, ctx, ": ", t.end - t.begin,
                   " bytes in the file but dtype ", st_dtype_name(t.dtype), " and shape need ", expect);
    h.tensors.push_back(std::move(t));
  }
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < h.tensors.size(); ++i)
    SP_CHECK_INPUT(h.tensors[i].begin >= h.tensors[i - 1].end, src, ": tensors '",
                   h.tensors[i - 1].name, "' and '", h.tensors[i].name, "' overlap");
  return h;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  SP_CHECK_INPUT(fd >= 0, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw InputError(str_cat(path, ": cannot stat"));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(str_cat(path, ": not a regular file"));
  }
  map_size_ = static_cast<uint64_t>(st.st_size);
  if (map_size_ < 8) {
    ::close(fd);
    throw InputError(str_cat(path, ": too short for a safetensors file (", map_size_, " bytes)"));
  }
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  SP_CHECK_INPUT(map_ != MAP_FAILED, path, ": mmap failed (", std::strerror(errno), ")");
  try {
    header_ = parse_safetensors_header(static_cast<const uint8_t*>(map_), map_size_, map_size_, path);
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& t) const {
  return static_cast<const uint8_t*>(map_) + header_.data_start + t.begin;
}

Checkpoint::Checkpoint(const std::string& dir_or_file) : source_(dir_or_file) {
  struct stat st {};
  SP_CHECK_INPUT(::stat(dir_or_file.c_str(), &st) == 0, dir_or_file, ": not found");
  std::vector<std::string> paths;
  if (S_ISDIR(st.st_mode)) {
    const std::string single = path_join(dir_or_file, "model.safetensors");
    const std::string index = path_join(dir_or_file, "model.safetensors.index.json");
    // The single file first, as transformers' from_pretrained looks.
    if (!path_exists(single) && path_exists(index)) {
      const json j = read_json_input(index);
      SP_CHECK_INPUT(j.contains("weight_map") && j["weight_map"].is_object(), index,
                     ": missing object 'weight_map'");
      std::map<std::string, std::string> name_to_file;
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        SP_CHECK_INPUT(it.value().is_string(), index, ": weight_map value of '", it.key(),
                       "' must be a file name");
        const std::string f = it.value().get<std::string>();
        SP_CHECK_INPUT(f.find('/') == std::string::npos && f != "" && f != "." && f != "..", index,
                       ": shard name '", f, "' must be a plain file name");
        name_to_file[it.key()] = f;
        if (std::find(paths.begin(), paths.end(), path_join(dir_or_file, f)) == paths.end())
          paths.push_back(path_join(dir_or_file, f));
      }
      for (const auto& p : paths) files_.push_back(std::make_unique<SafetensorsFile>(p));
      for (const auto& [name, f] : name_to_file) {
        const SafetensorsFile* owner = nullptr;
        for (const auto& file : files_)
          if (file->path() == path_join(dir_or_file, f)) owner = file.get();
        SP_CHECK_INPUT(owner && owner->find(name), index, ": tensor '", name,
                       "' is listed in weight_map but missing from shard ", f);
        where_[name] = owner;
      }
      return;
    }
    SP_CHECK_INPUT(path_exists(single), dir_or_file,
                   ": no model.safetensors or model.safetensors.index.json");
    paths.push_back(single);
  } else {
    paths.push_back(dir_or_file);
  }
  for (const auto& p : paths) files_.push_back(std::make_unique<SafetensorsFile>(p));
  for (const auto& f : files_)
    for (const auto& t : f->header().tensors) where_[t.name] = f.get();
}

bool Checkpoint::has(const std::string& name) const { return where_.count(name) > 0; }

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  SP_CHECK_INPUT(it != where_.end(), source_, ": tensor '", name, "' not found in checkpoint");
  return *it->second->find(name);
}

const uint8_t* Checkpoint::data(const std::string& name) const {
  auto it = where_.find(name);
  SP_CHECK_INPUT(it != where_.end(), source_, ": tensor '", name, "' not found in checkpoint");
  return it->second->data(*it->second->find(name));
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : where_) out.push_back(n);
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                       const TensorFiller& fill, const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& s : specs) {
    SP_CHECK_INPUT(!header.contains(s.name), path, ": duplicate tensor name '", s.name, "'");
    header[s.name] = {{"dtype", st_dtype_name(s.dtype)},
                      {"shape", s.shape},
                      {"data_offsets", {offset, offset + s.nbytes()}}};
    offset += s.nbytes();
  }
  std::string text = header.dump();
  // Pad the header with spaces so the data section starts 8-byte aligned,
  // as the reference implementation does.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');

  const auto parent = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  if (!parent.empty()) make_dirs(parent);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  SP_CHECK_INPUT(f, tmp, ": cannot open for writing (", std::strerror(errno), ")");
  auto fail = [&](const std::string& why) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw InputError(str_cat(tmp, ": ", why));
  };
  uint8_t len[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  if (std::fwrite(len, 1, 8, f) != 8 || std::fwrite(text.data(), 1, n, f) != n)
    fail("write failed");
  std::vector<uint8_t> buf;
  for (const auto& s : specs) {
    buf.resize(s.nbytes());
    try {
      fill(s, buf.data());
    } catch (...) {
      std::fclose(f);
      std::remove(tmp.c_str());
      throw;
    }
    if (!buf.empty() && std::fwrite(buf.data(), 1, buf.size(), f) != buf.size())
      fail(str_cat("write failed (", std::strerror(errno), ")"));
  }
  // A full disk or a network filesystem may report the error only here.
  if (std::fflush(f) != 0) fail(str_cat("flush failed (", std::strerror(errno), ")"));
  if (::fsync(::fileno(f)) != 0) fail(str_cat("fsync failed (", std::strerror(errno), ")"));
  const int closed = std::fclose(f);
  f = nullptr;
  if (closed != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw InputError(str_cat(path, closed != 0 ? ": close failed (" : ": rename failed (", why, ")"));
  }
}

namespace {

// Removes model-NNNNN-of-NNNNN.safetensors files of `dir` not in `keep`.
void remove_stale_shards(const std::string& dir, const std::set<std::string>& keep) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool shard = name.size() == 32 && name.compare(0, 6, "model-") == 0 &&
                       name.compare(11, 4, "-of-") == 0 && name.compare(20, 12, ".safetensors") == 0 &&
                       std::all_of(name.begin() + 6, name.begin() + 11, ::isdigit) &&
                       std::all_of(name.begin() + 15, name.begin() + 20, ::isdigit);
    if (shard && !keep.count(name)) std::remove(entry.path().c_str());
  }
}

}  // namespace

void write_checkpoint(const std::string& dir, const std::vector<TensorSpec>& specs,
                      const TensorFiller& fill, uint64_t max_shard_bytes) {
  std::vector<std::vector<TensorSpec>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& s : specs) {
    if (!shards.back().empty() && in_shard + s.nbytes() > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(s);
    in_shard += s.nbytes();
    total += s.nbytes();
  }
  // Weights too large for the disk would fail only after minutes of writing
  // (or, for a mistyped size, after trying to allocate terabytes).
  // The folder may not exist yet: its nearest existing ancestor holds it.
  std::error_code ec;
  auto existing = std::filesystem::absolute(dir, ec);
  while (!ec && !std::filesystem::exists(existing, ec) && existing.has_relative_path())
    existing = existing.parent_path();
  const auto space = std::filesystem::space(existing, ec);
  SP_CHECK_INPUT(ec || total <= space.available, "writing ", std::ceil(total / 1e8) / 10, " GB of weights into ",
                 dir, ", which has ", std::floor(space.available / 1e8) / 10, " GB free");
  make_dirs(dir);
  // A folder saved into before keeps the other layout's files: a stale single
  // file is what loaders read first, stale shards sit beside the new ones.
  // They go, in an order where a crash leaves either the new weights or an
  // error, never the old weights read as new.
  const std::string single = path_join(dir, "model.safetensors");
  const std::string index_path = path_join(dir, "model.safetensors.index.json");
  if (shards.size() == 1) {
    write_safetensors(single, specs, fill);
    std::remove(index_path.c_str());
    remove_stale_shards(dir, {});
    return;
  }
  json weight_map = json::object();
  std::set<std::string> written;
  const size_t count = shards.size();
  for (size_t i = 0; i < count; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, count);
    write_safetensors(path_join(dir, name), shards[i], fill);
    written.insert(name);
    for (const auto& s : shards[i]) weight_map[s.name] = name;
  }
  std::remove(single.c_str());
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic(index_path, index.dump(2) + "\n");
  remove_stale_shards(dir, written);
}

}  // namespace synthpert::engine
