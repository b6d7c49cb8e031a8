// safetensors files: reader (memory-mapped, single file or sharded through
// model.safetensors.index.json) and a streaming writer.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data; offsets are relative to the end of the header.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace synthpert::engine {

enum class StDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* st_dtype_name(StDType t);
size_t st_dtype_size(StDType t);
StDType parse_st_dtype(const std::string& name, const std::string& context);

struct TensorInfo {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // ordered by data offset
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + header length
};

// Parses and validates a header given the first bytes of a file and the
// file's total size. Every rule is checked: header length within the file,
// valid JSON object, known dtypes, non-negative shapes, byte size equal to
// numel × dtype size, offsets inside the data section and not overlapping.
// Throws InputError naming `source`; never reads past `size` bytes.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t available,
                                           uint64_t file_size, const std::string& source);

// A read-only, memory-mapped safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const TensorInfo* find(const std::string& name) const;
  const uint8_t* data(const TensorInfo& t) const;

 private:
  std::string path_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;
  void* map_ = nullptr;
  uint64_t map_size_ = 0;
};

// All tensors of a Hugging Face checkpoint folder: model.safetensors, or the
// shards named by model.safetensors.index.json. Also opens a single file path.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir_or_file);

  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws InputError if missing
  const uint8_t* data(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

// A tensor to be written: name, dtype, shape. Its bytes are produced on demand.
struct TensorSpec {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

// Fills `out` (exactly spec.nbytes() bytes) with the tensor's data.
using TensorFiller = std::function<void(const TensorSpec& spec, uint8_t* out)>;

// Writes one safetensors file atomically (temp + rename), tensors in the given
// order, streaming: only one tensor's bytes are in memory at a time.
void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                       const TensorFiller& fill,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes a checkpoint folder: model.safetensors if the total fits in
// `max_shard_bytes`, else model-0000i-of-0000N.safetensors shards plus
// model.safetensors.index.json, exactly as Hugging Face lays them out.
void write_checkpoint(const std::string& dir, const std::vector<TensorSpec>& specs,
                      const TensorFiller& fill, uint64_t max_shard_bytes);

}  // namespace synthpert::engine
