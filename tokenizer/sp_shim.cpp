// libsynthpert_spm.so: see sp_shim.h for why this module exists.
#include "tokenizer/sp_shim.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Processor = sentencepiece::SentencePieceProcessor;

long copy_out(const std::string& s, char* out, size_t cap) {
  std::memcpy(out, s.data(), std::min(cap, s.size()));
  return static_cast<long>(s.size());
}

}  // namespace

extern "C" {

void* synthpert_spm_load(const char* path, char* err, size_t err_cap) {
  auto* sp = new Processor();
  const auto st = sp->Load(path);
  if (st.ok()) return sp;
  if (err_cap) {
    const std::string msg = st.ToString();
    const size_t n = std::min(err_cap - 1, msg.size());
    std::memcpy(err, msg.data(), n);
    err[n] = '\0';
  }
  delete sp;
  return nullptr;
}

void synthpert_spm_free(void* handle) { delete static_cast<Processor*>(handle); }

long synthpert_spm_encode(void* handle, const char* text, size_t len, int* out, size_t cap) {
  std::vector<int> ids;
  if (!static_cast<Processor*>(handle)->Encode(std::string(text, len), &ids).ok()) return -1;
  std::memcpy(out, ids.data(), std::min(cap, ids.size()) * sizeof(int));
  return static_cast<long>(ids.size());
}

long synthpert_spm_decode(void* handle, const int* ids, size_t n, char* out, size_t cap) {
  std::string text;
  if (!static_cast<Processor*>(handle)->Decode(std::vector<int>(ids, ids + n), &text).ok()) return -1;
  return copy_out(text, out, cap);
}

long synthpert_spm_id_to_piece(void* handle, int id, char* out, size_t cap) {
  return copy_out(static_cast<Processor*>(handle)->IdToPiece(id), out, cap);
}

int synthpert_spm_piece_to_id(void* handle, const char* piece, size_t len) {
  return static_cast<Processor*>(handle)->PieceToId(std::string(piece, len));
}

int synthpert_spm_query(void* handle, int what, int id) {
  const auto* sp = static_cast<const Processor*>(handle);
  switch (what) {
    case kSpmPieceSize: return sp->GetPieceSize();
    case kSpmIsControl: return sp->IsControl(id) ? 1 : 0;
    case kSpmIsUnknown: return sp->IsUnknown(id) ? 1 : 0;
    case kSpmBosId: return sp->bos_id();
    case kSpmEosId: return sp->eos_id();
    case kSpmUnkId: return sp->unk_id();
  }
  return -1;
}
}
