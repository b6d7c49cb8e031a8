// A sentencepiece model reached through the libsynthpert_spm.so module
// (sp_shim.h explains why it is loaded with dlopen). The module is looked
// for at $SYNTHPERT_SPM_MODULE, then at the path it was built to, then next
// to the running executable.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace synthpert::tokenizer {

class SpModel {
 public:
  explicit SpModel(const std::string& model_path);
  ~SpModel();
  SpModel(const SpModel&) = delete;
  SpModel& operator=(const SpModel&) = delete;

  std::vector<int> encode(std::string_view text) const;
  std::string decode(const std::vector<int>& ids) const;
  std::string id_to_piece(int id) const;
  int piece_to_id(std::string_view piece) const;
  int piece_size() const;
  bool is_control(int id) const;
  bool is_unknown(int id) const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;

 private:
  void* handle_ = nullptr;
};

}  // namespace synthpert::tokenizer
