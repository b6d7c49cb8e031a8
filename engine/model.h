// The decoder-only transformer of Llama, Qwen2, Qwen3 and Mistral checkpoints,
// written with libtorch ops (CPU; CUDA dispatch goes through kernels/).
//
// Legend: B batch, T new tokens, S key slots (cached + new), C hidden,
// H query heads, Hkv key/value heads, D head dim, V vocab.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/cached_attention.h"
#include "engine/config.h"
#include "engine/linear.h"
#include "engine/packed_attention.h"
#include "engine/safetensors.h"
#include "engine/torch_compat.h"

namespace synthpert::engine {

// Keys and values of past tokens. Row b's tokens sit compactly in slots
// [0, lengths[b]): each forward appends only its valid tokens, in order,
// after the row's last one, so rows of different lengths (and prompts padded
// on either side) leave no holes and no padding slots. capacity is a
// multiple of kPageSize. Per layer, one of two layouts of the same slots:
//   token-major (B, capacity, Hkv, D) where the paged decode kernel runs
//     (engine/paged_decode.h): it is a paged cache whose row b's page j is
//     page b * (capacity / kPageSize) + j, read by the kernel in place;
//   head-major (B, Hkv, capacity, D) elsewhere: the dense path reads the
//     first slots of every head as a view, without a copy.
enum class KVLayout { kAuto, kTokenMajor, kHeadMajor };

struct KVCache {
  static constexpr int64_t kPageSize = 16;

  std::vector<torch::Tensor> k, v;  // per layer, in the layout below
  bool token_major = false;
  torch::Tensor key_position;       // (B, capacity) int64 (RoPE position, for sliding windows)
  std::vector<int64_t> lengths;     // per row: slots filled
  int64_t capacity = 0;             // slots per row (a multiple of kPageSize)
  torch::Tensor block_table;        // (B, capacity / kPageSize) int32 on the cache's device

  // Room for at least `capacity` tokens per row (rounded up to whole pages);
  // kAuto: token-major where the paged kernel runs this device, dtype and
  // head dim, else head-major (tests force either).
  static KVCache create(const ModelConfig& c, int64_t batch, int64_t capacity,
                        torch::ScalarType dtype, torch::Device device, KVLayout layout = KVLayout::kAuto);
  // Keeps only the given rows, in that order (e.g. one copy per candidate).
  void select_rows(const torch::Tensor& rows);
  // Rows [begin, begin + count) as a cache of their own that shares this
  // one's storage (a forward on it writes here); its lengths are a copy, to
  // be written back by the caller (BatchScheduler's row pool).
  KVCache row_range(int64_t begin, int64_t count) const;
  // Copies row `from` (its filled slots and length) over row `to`.
  void move_row(int64_t from, int64_t to);
  // Exchanges rows a and b (filled slots and lengths).
  void swap_rows(int64_t a, int64_t b);
  // Row `to` becomes the first n slots of `src`'s row `from` (a cache of the
  // same model, device and dtype, in either layout); its length becomes n.
  void copy_row_from(const KVCache& src, int64_t from, int64_t to, int64_t n);
  int64_t max_length() const;
  bool empty() const { return max_length() == 0; }
  // A layer's tensor as (B, capacity, Hkv, D) or (B, Hkv, capacity, D) views.
  torch::Tensor by_token(const torch::Tensor& t) const { return token_major ? t : t.transpose(1, 2); }
  torch::Tensor by_head(const torch::Tensor& t) const { return token_major ? t.transpose(1, 2) : t; }
};

struct ForwardBatch {
  torch::Tensor ids;        // (B, T) int64
  torch::Tensor positions;  // (B, T) int64, RoPE positions
  torch::Tensor valid;      // (B, T) bool: real token (false: padding); optional
  torch::Tensor segments;   // (B, T) int64: packed-sequence ids; optional, not with a cache
  // Per row: the index into the model's adapter bank (Transformer::adapter_names)
  // the row runs with, -1 for none; empty: no row uses the bank. Inference only.
  std::vector<int64_t> adapter;

  // A batch of one row per sequence, no padding, positions 0..T-1.
  static ForwardBatch from_ids(const torch::Tensor& ids_BT);
};

struct DecoderLayer {
  torch::Tensor input_norm, post_attention_norm;  // (C)
  torch::Tensor q_norm, k_norm;                   // (D), Qwen3 only
  Linear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

struct LoadOptions {
  torch::ScalarType dtype = torch::kFloat32;  // compute/storage dtype of the weights
  bool nf4 = false;  // quantise the seven projection weights of every layer (QLoRA)
  bool nf4_double_quant = false;  // with nf4: also quantise the NF4 scales to 8 bits (engine/nf4.h)
  torch::Device device = torch::kCPU;
};

// How self-attention is computed (engine/packed_attention.h).
//   kDense:  torch matmuls under an additive (T x S) mask; every case.
//   kPacked: tokens repacked per sequence, then the CUDA kernels where they
//            apply (bf16/f16, head dim 64 or 128) and torch math elsewhere;
//            never for sliding-window layers (those stay dense). Batches
//            without earlier KV-cache content go through packed_attention;
//            decode steps on a filled cache (one token per row) through the
//            paged decode op; other batches on a filled cache (continued
//            prefill) through cached_attention.
//   kAuto:   kPacked where the CUDA kernels apply, else kDense.
enum class AttentionPath { kAuto, kDense, kPacked };
// From SYNTHPERT_ATTENTION (auto | dense | packed; unset means auto), so a
// run can compare the paths without a rebuild.
AttentionPath attention_path_from_env();

// How RMSNorm, SwiGLU and RoPE are computed (engine/rowwise_ops.h): kTorch as plain
// torch expressions, kFused through the autograd ops (the CUDA kernels where
// they apply, torch math elsewhere), kAuto fused where the kernels apply.
enum class RowwisePath { kAuto, kTorch, kFused };

// Parses "cpu" / "cuda" / "cuda:N"; refuses CUDA when libtorch has none.
torch::Device parse_device(const std::string& name);
// "f32" | "bf16" | "f16" (the --dtype flags); throws InputError otherwise.
torch::ScalarType parse_dtype(const std::string& name);

class Transformer {
 public:
  static Transformer load(const std::string& model_dir, const LoadOptions& opts = {});
  static Transformer from_checkpoint(const ModelConfig& config, const Checkpoint& ckpt,
                                     const LoadOptions& opts = {});

  const ModelConfig& config() const { return config_; }
  torch::ScalarType dtype() const { return dtype_; }
  torch::Device device() const { return embed_tokens.device(); }

  // Hidden states after the final norm, (B, T, C). With a cache, this batch's
  // valid tokens attend to the row's cached ones and are appended after them
  // (KVCache); outputs at padding positions are finite but meaningless.
  torch::Tensor hidden_states(const ForwardBatch& batch, KVCache* cache = nullptr,
                              bool training = false) const;
  // float32 logits (.., V) from hidden states.
  torch::Tensor logits(const torch::Tensor& hidden) const;
  torch::Tensor forward(const ForwardBatch& batch, KVCache* cache = nullptr) const {
    return logits(hidden_states(batch, cache));
  }

  // Whether a batch on `cache` that pages_decode does not take (more than
  // one token per row) attends through cached_attention: a filled cache, by
  // attention_path (not for sliding-window layers, which stay dense).
  bool continues_packed(const KVCache* cache) const;

  // Every linear layer with its Hugging Face module name, e.g.
  // "model.layers.0.self_attn.q_proj" (LoRA targets, PEFT key names).
  std::vector<std::pair<std::string, Linear*>> named_linears();
  // Every weight tensor under its Hugging Face tensor name (NF4 weights are
  // reported dequantised when `dense` is set, else skipped).
  std::vector<std::pair<std::string, torch::Tensor*>> named_tensors();

  // Writes config.json + safetensors (merging LoRA adapters into the weights
  // when `merge_lora` is set) in the given dtype.
  void save(const std::string& dir, StDType dtype, bool merge_lora = false) const;

  torch::Tensor embed_tokens;  // (V, C)
  torch::Tensor final_norm;    // (C)
  torch::Tensor lm_head;       // (V, C); shares storage with embed_tokens when tied
  std::vector<DecoderLayer> layers;
  // Training: recompute each decoder layer's activations during backward
  // instead of keeping them (engine/activation_checkpoint.h).
  bool checkpoint_layers = false;
  AttentionPath attention_path = AttentionPath::kAuto;
  RowwisePath rowwise_path = RowwisePath::kAuto;
  // Serving: the adapters of the layers' banks (engine/lora_bank.h), in bank
  // order; ForwardBatch::adapter indexes them (load_peft_adapter_bank).
  std::vector<std::string> adapter_names;

 private:
  // One batch's RoPE inputs: cos/sin tables (B, T, D) for the torch path, or
  // positions (B, T) and inverse frequencies for the fused op.
  struct RopeInputs {
    torch::Tensor cos, sin, positions, inv_freq;
  };
  // Where one forward's valid tokens go in the cache, and what its attention
  // reads there: tokens valid_index of the B*T flattened (all of them when
  // undefined), as rows of `write_unit` elements (Hkv * D token-major, D
  // head-major), go to rows write_index of the layer's tensor; afterwards
  // the cache holds `slots_read` slots of interest.
  // `paged`: one token per row decoded by the paged kernel (seq_lens as
  // int32 on the device; their max is slots_read). `cached`: new tokens on a
  // filled cache attending through engine/cached_attention.h (the rows'
  // new-token counts and filled slots); null where the dense path runs.
  struct CacheStep {
    KVCache* cache = nullptr;
    torch::Tensor valid_index, write_index;
    int64_t write_unit = 0;
    int64_t slots_read = 0;
    bool paged = false;
    torch::Tensor seq_lens;
    std::shared_ptr<const CachedSequences> cached;
  };
  // Attention uses `packed` when given, else the additive `bias`; with a
  // cache step, the keys and values come from (and go to) the cache;
  // `adapters` routes each token through its row's adapter of the banks.
  torch::Tensor layer_forward(const DecoderLayer& L, size_t index, const torch::Tensor& x_BTC, const RopeInputs& rope,
                              const torch::Tensor& bias, const PackedSequences* packed, const CacheStep* cache,
                              const AdapterRouting* adapters, bool training) const;
  // Whether this batch's attention runs packed (see AttentionPath).
  bool packs_attention(const KVCache* cache) const;
  // Whether a decode step (one token per row on a filled cache) runs the
  // paged kernel (engine/paged_decode.h; not for sliding-window layers).
  bool pages_decode(const KVCache* cache, int64_t tokens) const;

  // RMSNorm, SwiGLU and RoPE, by rowwise_path.
  bool fused_rowwise() const;
  torch::Tensor norm(const torch::Tensor& x, const torch::Tensor& weight) const;
  torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) const;

  ModelConfig config_;
  torch::ScalarType dtype_ = torch::kFloat32;
  torch::Tensor inv_freq_;
};

// RMSNorm as Hugging Face computes it: in float32, cast back, then scaled.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

torch::ScalarType to_scalar_type(StDType t);
StDType to_st_dtype(torch::ScalarType t);

}  // namespace synthpert::engine
