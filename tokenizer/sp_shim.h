// C interface of libsynthpert_spm.so, a small module that wraps
// libsentencepiece and is loaded with dlopen(RTLD_LOCAL | RTLD_DEEPBIND).
//
// Why: Debian's libsentencepiece exports the symbols of the protobuf-lite
// copy built into it. In a process that also loads the system libprotobuf
// (Debian's libtorch does, through ONNX), those exports interpose on
// libprotobuf's own calls and the process crashes during static
// initialisation. Loaded locally with deep binding, sentencepiece's symbols
// stay out of the global scope and bind to its own copy.
#pragma once

#include <stddef.h>

extern "C" {

// Returns a handle, or null with a message in `err`.
void* synthpert_spm_load(const char* path, char* err, size_t err_cap);
void synthpert_spm_free(void* handle);
// Writes up to `cap` ids; returns how many there are (call again with a
// larger buffer if that exceeds `cap`), or -1 on failure.
long synthpert_spm_encode(void* handle, const char* text, size_t len, int* out, size_t cap);
// Writes up to `cap` bytes of the decoded text; returns its full length, or -1.
long synthpert_spm_decode(void* handle, const int* ids, size_t n, char* out, size_t cap);
long synthpert_spm_id_to_piece(void* handle, int id, char* out, size_t cap);
int synthpert_spm_piece_to_id(void* handle, const char* piece, size_t len);

enum SynthpertSpmQuery { kSpmPieceSize, kSpmIsControl, kSpmIsUnknown, kSpmBosId, kSpmEosId, kSpmUnkId };
int synthpert_spm_query(void* handle, int what, int id);
}
