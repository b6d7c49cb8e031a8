#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <tuple>

#include "common/error.h"
#include "common/fs.h"
#include <torch/cuda.h>
#include <torch/version.h>

#include "engine/activation_checkpoint.h"
#include "engine/attention_mask.h"
#include "engine/kernel_launch.h"
#include "engine/nf4_linear.h"
#include "engine/paged_decode.h"
#include "engine/rope.h"
#include "engine/rowwise_ops.h"

namespace synthpert::engine {

torch::ScalarType to_scalar_type(StDType t) {
  switch (t) {
    case StDType::F64: return torch::kFloat64;
    case StDType::F32: return torch::kFloat32;
    case StDType::F16: return torch::kFloat16;
    case StDType::BF16: return torch::kBFloat16;
    case StDType::I64: return torch::kInt64;
    case StDType::I32: return torch::kInt32;
    case StDType::I16: return torch::kInt16;
    case StDType::I8: return torch::kInt8;
    case StDType::U8: return torch::kUInt8;
    case StDType::BOOL: return torch::kBool;
  }
  return torch::kFloat32;
}

StDType to_st_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64: return StDType::F64;
    case torch::kFloat32: return StDType::F32;
    case torch::kFloat16: return StDType::F16;
    case torch::kBFloat16: return StDType::BF16;
    case torch::kInt64: return StDType::I64;
    case torch::kInt32: return StDType::I32;
    case torch::kUInt8: return StDType::U8;
    default: throw std::invalid_argument("to_st_dtype: unsupported scalar type");
  }
}

AttentionPath attention_path_from_env() {
  const char* v = std::getenv("SYNTHPERT_ATTENTION");
  const std::string s = v ? v : "";
  if (s.empty() || s == "auto") return AttentionPath::kAuto;
  if (s == "dense") return AttentionPath::kDense;
  if (s == "packed") return AttentionPath::kPacked;
  throw InputError("SYNTHPERT_ATTENTION: expected auto, dense or packed, got '" + s + "'");
}

torch::Device parse_device(const std::string& name) {
  SP_CHECK_INPUT(name == "cpu" || name.rfind("cuda", 0) == 0, "--device: expected cpu or cuda[:N], got '",
                 name, "'");
  const torch::Device d(name);
  SP_CHECK_INPUT(!d.is_cuda() || torch::cuda::is_available(), "--device ", name,
                 ": no CUDA device available to this libtorch (Debian's libtorch is CPU-only; "
                 "see docs/gpu-host.md)");
  return d;
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "f32") return torch::kFloat32;
  if (name == "bf16") return torch::kBFloat16;
  if (name == "f16") return torch::kFloat16;
  throw InputError(str_cat("--dtype: expected f32, bf16 or f16, got '", name, "'"));
}

namespace {

// Whether this libtorch multiplies float16 matrices on the CPU (1.13, which
// Debian ships, does not: every forward would fail deep inside with a raw
// library error). Asked once, by trying.
bool cpu_has_f16_matmul() {
  static const bool ok = [] {
    try {
      const auto a = torch::ones({2, 2}, torch::kFloat16);
      (void)torch::mm(a, a);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return ok;
}

// Row b's page j is page b * pages + j: the cache tensor read as pages.
torch::Tensor identity_block_table(int64_t batch, int64_t pages, torch::Device device) {
  return torch::arange(batch * pages, torch::TensorOptions().dtype(torch::kInt32)).view({batch, pages}).to(device);
}

}  // namespace

KVCache KVCache::create(const ModelConfig& c, int64_t batch, int64_t capacity,
                        torch::ScalarType dtype, torch::Device device, KVLayout layout) {
  SP_CHECK(batch > 0 && capacity > 0, "KV cache needs a batch and a capacity > 0");
  KVCache kv;
  kv.capacity = (capacity + kPageSize - 1) / kPageSize * kPageSize;
  kv.token_major = layout == KVLayout::kAuto ? paged_decode_kernel_supports(device, dtype, c.head_dim)
                                             : layout == KVLayout::kTokenMajor;
  auto opts = torch::TensorOptions().dtype(dtype).device(device);
  const std::vector<int64_t> shape =
      kv.token_major ? std::vector<int64_t>{batch, kv.capacity, c.num_key_value_heads, c.head_dim}
                     : std::vector<int64_t>{batch, c.num_key_value_heads, kv.capacity, c.head_dim};
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    kv.k.push_back(torch::zeros(shape, opts));
    kv.v.push_back(torch::zeros(shape, opts));
  }
  kv.key_position = torch::zeros({batch, kv.capacity}, opts.dtype(torch::kInt64));
  kv.lengths.assign(static_cast<size_t>(batch), 0);
  kv.block_table = identity_block_table(batch, kv.capacity / kPageSize, device);
  return kv;
}

void KVCache::select_rows(const torch::Tensor& rows) {
  for (auto& t : k) t = t.index_select(0, rows);
  for (auto& t : v) t = t.index_select(0, rows);
  key_position = key_position.index_select(0, rows);
  const auto host = rows.to(torch::kCPU, torch::kInt64).contiguous();
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < host.numel(); ++i) kept.push_back(lengths.at(static_cast<size_t>(host.data_ptr<int64_t>()[i])));
  lengths = std::move(kept);
  block_table = identity_block_table(static_cast<int64_t>(lengths.size()), capacity / kPageSize, key_position.device());
}

KVCache KVCache::row_range(int64_t begin, int64_t count) const {
  SP_CHECK(begin >= 0 && count > 0 && begin + count <= static_cast<int64_t>(lengths.size()), "KV cache rows [",
           begin, ", ", begin + count, ") outside its ", lengths.size(), " rows");
  KVCache view;
  view.token_major = token_major;
  view.capacity = capacity;
  // Narrowing the leading dimension of a contiguous tensor keeps it
  // contiguous with the same row stride, so the view's block table is the
  // pool's identity table shifted to the view's first row (for the decode
  // range, which starts at row 0, the pool's own rows: no work per step).
  for (const auto& t : k) view.k.push_back(t.narrow(0, begin, count));
  for (const auto& t : v) view.v.push_back(t.narrow(0, begin, count));
  view.key_position = key_position.narrow(0, begin, count);
  view.lengths.assign(lengths.begin() + begin, lengths.begin() + begin + count);
  const int64_t pages = capacity / kPageSize;
  view.block_table = block_table.narrow(0, begin, count);
  if (begin > 0) view.block_table = view.block_table - static_cast<int32_t>(begin * pages);
  return view;
}

void KVCache::move_row(int64_t from, int64_t to) {
  const int64_t n = lengths.at(static_cast<size_t>(from));
  lengths.at(static_cast<size_t>(to)) = n;
  if (n == 0) return;
  for (auto* layers : {&k, &v})
    for (auto& t : *layers) by_token(t).select(0, to).narrow(0, 0, n).copy_(by_token(t).select(0, from).narrow(0, 0, n));
  key_position.select(0, to).narrow(0, 0, n).copy_(key_position.select(0, from).narrow(0, 0, n));
}

void KVCache::swap_rows(int64_t a, int64_t b) {
  const int64_t n = std::max(lengths.at(static_cast<size_t>(a)), lengths.at(static_cast<size_t>(b)));
  std::swap(lengths[static_cast<size_t>(a)], lengths[static_cast<size_t>(b)]);
  if (n == 0 || a == b) return;
  auto swap_slots = [&](const torch::Tensor& ra, const torch::Tensor& rb) {
    const torch::Tensor held = ra.narrow(0, 0, n).clone();
    ra.narrow(0, 0, n).copy_(rb.narrow(0, 0, n));
    rb.narrow(0, 0, n).copy_(held);
  };
  for (auto* layers : {&k, &v})
    for (auto& t : *layers) swap_slots(by_token(t).select(0, a), by_token(t).select(0, b));
  swap_slots(key_position.select(0, a), key_position.select(0, b));
}

void KVCache::copy_row_from(const KVCache& src, int64_t from, int64_t to, int64_t n) {
  SP_CHECK(src.k.size() == k.size() && n >= 0 && n <= src.lengths.at(static_cast<size_t>(from)) && n <= capacity,
           "KV cache row copy of ", n, " slots from a row of ", src.lengths.at(static_cast<size_t>(from)),
           " into rows of ", capacity, " (", src.k.size(), " and ", k.size(), " layers)");
  lengths.at(static_cast<size_t>(to)) = n;
  if (n == 0) return;
  for (size_t l = 0; l < k.size(); ++l) {
    by_token(k[l]).select(0, to).narrow(0, 0, n).copy_(src.by_token(src.k[l]).select(0, from).narrow(0, 0, n));
    by_token(v[l]).select(0, to).narrow(0, 0, n).copy_(src.by_token(src.v[l]).select(0, from).narrow(0, 0, n));
  }
  key_position.select(0, to).narrow(0, 0, n).copy_(src.key_position.select(0, from).narrow(0, 0, n));
}

int64_t KVCache::max_length() const {
  return lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
}

ForwardBatch ForwardBatch::from_ids(const torch::Tensor& ids_BT) {
  ForwardBatch b;
  b.ids = ids_BT;
  b.positions = torch::arange(ids_BT.size(1), ids_BT.options().dtype(torch::kInt64))
                    .unsqueeze(0)
                    .expand({ids_BT.size(0), ids_BT.size(1)})
                    .contiguous();
  return b;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto xf = x.to(torch::kFloat32);
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  auto normed = (xf * torch::rsqrt(var + eps)).to(x.scalar_type());
  return weight * normed;
}

namespace {

// Loads one tensor, checking the shape the config implies.
torch::Tensor load_tensor(const Checkpoint& ck, const std::string& name,
                          const std::vector<int64_t>& shape, torch::ScalarType dtype,
                          torch::Device device) {
  const TensorInfo& info = ck.info(name);
  SP_CHECK_INPUT(info.shape == shape, ck.source(), ": tensor '", name, "' has shape ",
                 torch::IntArrayRef(info.shape), " but config.json implies ", torch::IntArrayRef(shape));
  SP_CHECK_INPUT(info.dtype == StDType::F32 || info.dtype == StDType::F16 ||
                     info.dtype == StDType::BF16 || info.dtype == StDType::F64,
                 ck.source(), ": tensor '", name, "' has non-float dtype ", st_dtype_name(info.dtype));
  // from_blob over the read-only mapping; .to(copy=true) reads it once.
  auto view = torch::from_blob(const_cast<uint8_t*>(ck.data(name)), shape,
                               torch::TensorOptions().dtype(to_scalar_type(info.dtype)));
  return view.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
}

Linear load_linear(const Checkpoint& ck, const std::string& prefix, int64_t out, int64_t in, bool has_bias,
                   const LoadOptions& opts) {
  Linear l;
  l.weight = load_tensor(ck, prefix + ".weight", {out, in}, opts.dtype, opts.device);
  if (has_bias) l.bias = load_tensor(ck, prefix + ".bias", {out}, opts.dtype, opts.device);
  if (opts.nf4) {
    // Quantised where it will run (kernels/nf4 on CUDA); the dense copy goes.
    l.nf4 = std::make_shared<Nf4Weight>(nf4_quantize_device(l.weight, opts.nf4_double_quant));
    l.weight = torch::Tensor();
  }
  return l;
}

}  // namespace

Transformer Transformer::load(const std::string& model_dir, const LoadOptions& opts) {
  const ModelConfig config = load_config(model_dir);
  const Checkpoint ckpt(model_dir);
  return from_checkpoint(config, ckpt, opts);
}

Transformer Transformer::from_checkpoint(const ModelConfig& c, const Checkpoint& ck,
                                         const LoadOptions& opts) {
  Transformer m;
  m.config_ = c;
  m.dtype_ = opts.dtype;
  SP_CHECK_INPUT(opts.nf4 || !opts.nf4_double_quant, "double quantisation of NF4 scales needs NF4 weights");
  SP_CHECK_INPUT(opts.dtype != torch::kFloat16 || !opts.device.is_cpu() || cpu_has_f16_matmul(),
                 "--dtype f16 on the CPU: this libtorch (", TORCH_VERSION,
                 ") has no float16 matrix multiply there; use bf16 or f32, or --device cuda");
  const auto dt = opts.dtype;
  const auto dev = opts.device;
  const int64_t C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  m.embed_tokens = load_tensor(ck, "model.embed_tokens.weight", {V, C}, dt, dev);
  m.final_norm = load_tensor(ck, "model.norm.weight", {C}, dt, dev);
  if (c.tie_word_embeddings) {
    m.lm_head = m.embed_tokens;
  } else {
    SP_CHECK_INPUT(ck.has("lm_head.weight"), ck.source(),
                   ": tensor 'lm_head.weight' not found and config.json has tie_word_embeddings=false");
    m.lm_head = load_tensor(ck, "lm_head.weight", {V, C}, dt, dev);
  }
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    DecoderLayer L;
    L.input_norm = load_tensor(ck, p + ".input_layernorm.weight", {C}, dt, dev);
    L.post_attention_norm = load_tensor(ck, p + ".post_attention_layernorm.weight", {C}, dt, dev);
    const std::string a = p + ".self_attn.", f = p + ".mlp.";
    L.q_proj = load_linear(ck, a + "q_proj", c.q_dim(), C, c.attention_bias, opts);
    L.k_proj = load_linear(ck, a + "k_proj", c.kv_dim(), C, c.attention_bias, opts);
    L.v_proj = load_linear(ck, a + "v_proj", c.kv_dim(), C, c.attention_bias, opts);
    L.o_proj = load_linear(ck, a + "o_proj", C, c.q_dim(), c.o_proj_bias, opts);
    if (c.qk_norm) {
      L.q_norm = load_tensor(ck, a + "q_norm.weight", {c.head_dim}, dt, dev);
      L.k_norm = load_tensor(ck, a + "k_norm.weight", {c.head_dim}, dt, dev);
    }
    L.gate_proj = load_linear(ck, f + "gate_proj", I, C, c.mlp_bias, opts);
    L.up_proj = load_linear(ck, f + "up_proj", I, C, c.mlp_bias, opts);
    L.down_proj = load_linear(ck, f + "down_proj", C, I, c.mlp_bias, opts);
    m.layers.push_back(std::move(L));
  }
  m.inv_freq_ = rope_inv_freq(c);
  m.attention_path = attention_path_from_env();
  return m;
}

torch::Tensor Transformer::layer_forward(const DecoderLayer& L, size_t index,
                                         const torch::Tensor& x, const RopeInputs& rope, const torch::Tensor& bias,
                                         const PackedSequences* packed, const CacheStep* cache,
                                         const AdapterRouting* adapters, bool training) const {
  const auto& c = config_;
  const int64_t B = x.size(0), T = x.size(1), H = c.num_attention_heads,
                Hkv = c.num_key_value_heads, D = c.head_dim, rep = H / Hkv;

  auto h = norm(x, L.input_norm);
  auto q = L.q_proj.forward(h, training, adapters).view({B, T, H, D});
  auto k = L.k_proj.forward(h, training, adapters).view({B, T, Hkv, D});
  auto v = L.v_proj.forward(h, training, adapters).view({B, T, Hkv, D});
  if (c.qk_norm) {
    q = norm(q, L.q_norm);
    k = norm(k, L.k_norm);
  }
  if (rope.cos.defined()) {
    q = apply_rope(q.transpose(1, 2), rope.cos, rope.sin);  // (B, H, T, D)
    k = apply_rope(k.transpose(1, 2), rope.cos, rope.sin);  // (B, Hkv, T, D)
  } else {
    q = rope_op(q, rope.positions, rope.inv_freq).transpose(1, 2);
    k = rope_op(k, rope.positions, rope.inv_freq).transpose(1, 2);
  }
  v = v.transpose(1, 2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const bool paged = cache && cache->paged && c.layer_window(index) == 0;
  const bool cached = cache && cache->cached && c.layer_window(index) == 0;
  if (cache) {
    // The valid tokens into their slots, one index_copy_ in either layout.
    auto place = [&](torch::Tensor& store, const torch::Tensor& t_BKTD) {
      auto tokens = t_BKTD.transpose(1, 2).reshape({B * T, Hkv, D});
      if (cache->valid_index.defined()) tokens = tokens.index_select(0, cache->valid_index);
      store.view({-1, cache->write_unit}).index_copy_(0, cache->write_index, tokens.reshape({-1, cache->write_unit}));
    };
    place(cache->cache->k[index], k);
    place(cache->cache->v[index], v);
    // The dense path reads the filled slots as a view. Packed attention only
    // runs with an empty cache (this batch's keys are all); the paged and
    // cached ops read the cache themselves.
    if (!packed && !paged && !cached) {
      const KVCache& kv = *cache->cache;
      k = kv.by_head(kv.k[index]).narrow(2, 0, cache->slots_read);
      v = kv.by_head(kv.v[index]).narrow(2, 0, cache->slots_read);
    }
  }
  torch::Tensor attn;
  if (paged) {
    PagedDecodeInputs in;
    in.block_table = cache->cache->block_table;
    in.page_size = KVCache::kPageSize;
    in.seq_lens = cache->seq_lens;
    in.max_seq_len = cache->slots_read;
    const KVCache& kv = *cache->cache;
    attn = paged_decode_attention(q.select(2, 0), kv.by_token(kv.k[index]), kv.by_token(kv.v[index]), in, scale)
               .reshape({B, T, H * D});
  } else if (cached) {
    // This batch's valid tokens, row by row, over their rows' filled slots.
    auto q_new = q.transpose(1, 2).reshape({B * T, H, D});
    if (cache->valid_index.defined()) q_new = q_new.index_select(0, cache->valid_index);
    const KVCache& kv = *cache->cache;
    auto o = cached_attention(q_new, kv.by_token(kv.k[index]), kv.by_token(kv.v[index]), *cache->cached, scale);
    if (cache->valid_index.defined()) o = torch::zeros({B * T, H, D}, o.options()).index_copy(0, cache->valid_index, o);
    attn = o.reshape({B, T, H * D});
  } else if (packed) {
    const auto o = packed_attention(pack_tokens(q.transpose(1, 2), *packed), pack_tokens(k.transpose(1, 2), *packed),
                                    pack_tokens(v.transpose(1, 2), *packed), *packed, /*causal=*/true, scale);
    attn = unpack_tokens(o, *packed).reshape({B, T, H * D});
  } else {
    const int64_t S = k.size(2);
    // Grouped-query attention without copying K/V: the `rep` query heads that
    // share a KV head are stacked along the token axis.
    auto qg = q.reshape({B, Hkv, rep * T, D});
    auto scores = torch::matmul(qg, k.transpose(2, 3)).view({B, Hkv, rep, T, S});
    scores = scores.to(torch::kFloat32) * scale + bias.unsqueeze(2);
    auto probs = torch::softmax(scores, -1).to(q.scalar_type()).view({B, Hkv, rep * T, S});
    attn = torch::matmul(probs, v).view({B, H, T, D}).transpose(1, 2).reshape({B, T, H * D});
  }
  auto out = x + L.o_proj.forward(attn, training, adapters);

  h = norm(out, L.post_attention_norm);
  const auto gate = L.gate_proj.forward(h, training, adapters), up = L.up_proj.forward(h, training, adapters);
  auto mlp = L.down_proj.forward(swiglu(gate, up), training, adapters);
  return out + mlp;
}

torch::Tensor Transformer::hidden_states(const ForwardBatch& batch, KVCache* cache,
                                         bool training) const {
  const auto& ids = batch.ids;
  SP_CHECK_INPUT(ids.dim() == 2, "input ids must be (batch, tokens), got ", ids.dim(), "-D");
  const int64_t B = ids.size(0), T = ids.size(1);
  SP_CHECK_INPUT(T > 0, "input ids are empty");
  {
    // Both bounds in one read: a single wait for the device on CUDA.
    const auto bounds = torch::stack({ids.min(), ids.max()}).to(torch::kCPU);
    const int64_t lo = bounds[0].item<int64_t>(), hi = bounds[1].item<int64_t>();
    SP_CHECK_INPUT(lo >= 0 && hi < config_.vocab_size, "token id ", lo < 0 ? lo : hi,
                   " is outside the vocabulary [0, ", config_.vocab_size, ")");
  }
  auto valid = batch.valid.defined() ? batch.valid
                                     : torch::ones({B, T}, ids.options().dtype(torch::kBool));
  AdapterRouting adapters;
  if (!batch.adapter.empty()) {
    SP_CHECK_INPUT(!training, "per-row adapters serve inference only");
    SP_CHECK_INPUT(static_cast<int64_t>(batch.adapter.size()) == B, "the batch names adapters for ",
                   batch.adapter.size(), " rows, it has ", B);
    adapters = AdapterRouting::for_rows(batch.adapter, T, static_cast<int64_t>(adapter_names.size()), ids.device());
  }
  MaskSpec m;
  CacheStep step;
  std::vector<int64_t> lengths_after;
  if (cache) {
    SP_CHECK(!batch.segments.defined(), "packed segments cannot be used with a KV cache");
    SP_CHECK(cache->k.front().size(0) == B && static_cast<int64_t>(cache->lengths.size()) == B,
             "KV cache batch size does not match the input");
    // Token t of row b goes to slot lengths[b] + (its rank among the row's
    // valid tokens of this batch); padding is not stored.
    // Without a validity mask every token counts, and the host need not wait
    // for the device to learn how many (decode steps).
    std::vector<int64_t> counts(static_cast<size_t>(B), T);
    if (batch.valid.defined()) {
      const auto c = valid.sum(1).to(torch::kCPU, torch::kInt64).contiguous();
      counts.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + B);
    }
    for (int64_t b = 0; b < B; ++b) {
      lengths_after.push_back(cache->lengths[b] + counts[b]);
      SP_CHECK_INPUT(lengths_after.back() <= cache->capacity, "KV cache full: row ", b, " holds ", cache->lengths[b],
                     " + ", counts[b], " tokens, more than its capacity ", cache->capacity);
    }
    const auto i64 = ids.options().dtype(torch::kInt64);
    const auto before = torch::tensor(cache->lengths, torch::kInt64).to(ids.device()).unsqueeze(1);
    bool all_valid = true;
    for (int64_t b = 0; b < B; ++b) all_valid = all_valid && counts[b] == T;
    const auto rank = all_valid ? torch::arange(T, i64).unsqueeze(0) : valid.to(torch::kInt64).cumsum(1) - 1;
    const auto dest = before + rank;  // (B, T)
    step.cache = cache;
    // Row and slot of every stored token; when every token is valid (decode
    // steps, unpadded batches) none is skipped.
    auto rows = torch::arange(B, i64).unsqueeze(1).expand({B, T}).reshape({-1});
    auto slots = dest.reshape({-1});
    auto positions = batch.positions.reshape({-1});
    if (!all_valid) {
      step.valid_index = valid.reshape({-1}).nonzero().squeeze(1);
      rows = rows.index_select(0, step.valid_index);
      slots = slots.index_select(0, step.valid_index);
      positions = positions.index_select(0, step.valid_index);
    }
    const auto flat = rows * cache->capacity + slots;
    cache->key_position.view({-1}).index_copy_(0, flat, positions);
    const int64_t Hkv = config_.num_key_value_heads, D = config_.head_dim;
    if (cache->token_major) {
      step.write_index = flat;
      step.write_unit = Hkv * D;
    } else {
      // Row (b * Hkv + h) * capacity + slot of the (B * Hkv * capacity, D) view.
      step.write_index = (((rows * Hkv).unsqueeze(1) + torch::arange(Hkv, i64)) * cache->capacity + slots.unsqueeze(1))
                             .reshape({-1});
      step.write_unit = D;
    }
    const auto after = torch::tensor(lengths_after, torch::kInt64).to(ids.device());
    step.slots_read = *std::max_element(lengths_after.begin(), lengths_after.end());
    // A padding token before any of its row's tokens gets slot 0, so that it
    // sees a key (the mask lets every query see its own slot).
    m.query_slot_BT = dest.clamp_min(0);
    m.key_valid_BS = torch::arange(step.slots_read, i64).unsqueeze(0) < after.unsqueeze(1);
    m.position_q_BT = batch.positions;
    m.position_k_BS = cache->key_position.narrow(1, 0, step.slots_read);
    step.paged = pages_decode(cache, T);
    if (step.paged) step.seq_lens = after.to(torch::kInt32);
    if (!step.paged && continues_packed(cache))
      step.cached = std::make_shared<const CachedSequences>(cached_sequences(counts, lengths_after, ids.device()));
  } else {
    m.query_slot_BT = torch::arange(T, ids.options().dtype(torch::kInt64)).unsqueeze(0).expand({B, T});
    m.key_valid_BS = valid;
    m.position_q_BT = batch.positions;
    m.position_k_BS = batch.positions;
    if (batch.segments.defined()) {
      m.segment_q_BT = batch.segments;
      m.segment_k_BS = batch.segments;
    }
  }
  std::shared_ptr<const PackedSequences> packed;
  if (packs_attention(cache)) packed = pack_sequences(valid, batch.segments, ids.device());
  // The (T x S) biases are built only for the layers that need them.
  torch::Tensor full_bias;
  bool any_full = false;
  for (size_t i = 0; i < layers.size(); ++i) any_full |= config_.layer_window(i) == 0;
  if (!packed && !step.paged && !step.cached && any_full) full_bias = build_attention_bias(m);
  torch::Tensor window_bias;
  if (config_.sliding_window > 0) {
    m.window = config_.sliding_window;
    window_bias = build_attention_bias(m);
  }
  RopeInputs rope;
  if (fused_rowwise()) {
    rope.positions = batch.positions;
    rope.inv_freq = inv_freq_.to(ids.device());
  } else {
    std::tie(rope.cos, rope.sin) = rope_cos_sin(inv_freq_, batch.positions);
  }

  auto x = torch::embedding(embed_tokens, ids);
  const bool recompute = checkpoint_layers && training && !cache && torch::GradMode::is_enabled();
  // A frozen embedding's output does not require grad; the checkpointed
  // layers need an input that does, or their backward would never run.
  if (recompute && !x.requires_grad()) x = x.detach().requires_grad_(true);
  for (size_t i = 0; i < layers.size(); ++i) {
    const bool windowed = config_.layer_window(i) > 0;
    const auto& bias = windowed ? window_bias : full_bias;
    const PackedSequences* layer_packed = windowed ? nullptr : packed.get();
    if (recompute) {
      x = checkpointed_block(
          // By value: the lambda runs again in backward, after this frame is gone.
          [this, i, r = rope, b = bias, p = windowed ? nullptr : packed](const torch::Tensor& in) {
            return layer_forward(layers[i], i, in, r, b, p.get(), nullptr, nullptr, true);
          },
          x);
    } else {
      x = layer_forward(layers[i], i, x, rope, bias, layer_packed, cache ? &step : nullptr,
                        adapters.token_adapter.defined() ? &adapters : nullptr, training);
    }
  }
  if (cache) cache->lengths = std::move(lengths_after);
  return norm(x, final_norm);
}

bool Transformer::packs_attention(const KVCache* cache) const {
  if (cache && !cache->empty()) return false;  // keys from earlier calls: dense mask or paged decode
  switch (attention_path) {
    case AttentionPath::kDense: return false;
    case AttentionPath::kPacked: return true;
    case AttentionPath::kAuto: break;
  }
  return packed_attention_kernel_supports(device(), dtype_, config_.head_dim);
}

bool Transformer::pages_decode(const KVCache* cache, int64_t tokens) const {
  if (!cache || tokens != 1 || cache->empty()) return false;
  switch (attention_path) {
    case AttentionPath::kDense: return false;
    case AttentionPath::kPacked: return true;
    case AttentionPath::kAuto: break;
  }
  return paged_decode_kernel_supports(device(), dtype_, config_.head_dim);
}

bool Transformer::continues_packed(const KVCache* cache) const {
  if (!cache || cache->empty()) return false;
  switch (attention_path) {
    case AttentionPath::kDense: return false;
    case AttentionPath::kPacked: return true;
    case AttentionPath::kAuto: break;
  }
  return packed_attention_kernel_supports(device(), dtype_, config_.head_dim);
}

bool Transformer::fused_rowwise() const {
  switch (rowwise_path) {
    case RowwisePath::kTorch: return false;
    case RowwisePath::kFused: return true;
    case RowwisePath::kAuto: break;
  }
  return kernels_apply(device(), dtype_);
}

torch::Tensor Transformer::norm(const torch::Tensor& x, const torch::Tensor& weight) const {
  return fused_rowwise() ? rms_norm_op(x, weight, config_.rms_norm_eps) : rms_norm(x, weight, config_.rms_norm_eps);
}

torch::Tensor Transformer::swiglu(const torch::Tensor& gate, const torch::Tensor& up) const {
  return fused_rowwise() ? swiglu_op(gate, up) : torch::silu(gate) * up;
}

torch::Tensor Transformer::logits(const torch::Tensor& hidden) const {
  return torch::matmul(hidden, lm_head.t()).to(torch::kFloat32);
}

std::vector<std::pair<std::string, Linear*>> Transformer::named_linears() {
  std::vector<std::pair<std::string, Linear*>> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    auto& L = layers[i];
    out.emplace_back(p + ".self_attn.q_proj", &L.q_proj);
    out.emplace_back(p + ".self_attn.k_proj", &L.k_proj);
    out.emplace_back(p + ".self_attn.v_proj", &L.v_proj);
    out.emplace_back(p + ".self_attn.o_proj", &L.o_proj);
    out.emplace_back(p + ".mlp.gate_proj", &L.gate_proj);
    out.emplace_back(p + ".mlp.up_proj", &L.up_proj);
    out.emplace_back(p + ".mlp.down_proj", &L.down_proj);
  }
  return out;
}

std::vector<std::pair<std::string, torch::Tensor*>> Transformer::named_tensors() {
  std::vector<std::pair<std::string, torch::Tensor*>> out;
  out.emplace_back("model.embed_tokens.weight", &embed_tokens);
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    auto& L = layers[i];
    out.emplace_back(p + ".input_layernorm.weight", &L.input_norm);
    out.emplace_back(p + ".post_attention_layernorm.weight", &L.post_attention_norm);
    if (config_.qk_norm) {
      out.emplace_back(p + ".self_attn.q_norm.weight", &L.q_norm);
      out.emplace_back(p + ".self_attn.k_norm.weight", &L.k_norm);
    }
  }
  for (auto& [name, lin] : named_linears()) {
    if (lin->weight.defined()) out.emplace_back(name + ".weight", &lin->weight);
    if (lin->bias.defined()) out.emplace_back(name + ".bias", &lin->bias);
  }
  out.emplace_back("model.norm.weight", &final_norm);
  if (!config_.tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head);
  return out;
}

void Transformer::save(const std::string& dir, StDType dtype, bool merge_lora) const {
  auto& self = const_cast<Transformer&>(*this);  // named_* only hand out pointers to read
  // A weight that is NF4 or gets its adapter merged is built when the writer
  // asks for it and leaves the device at once: building them all first would
  // hold a float32 copy of every such weight (28 GB for an 8B model).
  struct Source {
    torch::Tensor stored;
    const Linear* built = nullptr;
  };
  std::vector<std::pair<std::string, Source>> sources;
  for (auto& [name, t] : self.named_tensors()) sources.push_back({name, {*t, nullptr}});
  std::vector<TensorSpec> specs;
  for (const auto& [name, src] : sources) specs.push_back({name, dtype, src.stored.sizes().vec()});
  for (auto& [name, lin] : self.named_linears()) {
    if (!lin->nf4 && !(merge_lora && lin->lora)) continue;
    const std::string key = name + ".weight";
    const std::vector<int64_t> shape = {lin->out_features(), lin->in_features()};
    bool replaced = false;
    for (size_t i = 0; i < sources.size(); ++i)
      if (sources[i].first == key) sources[i].second = {torch::Tensor(), lin}, specs[i].shape = shape, replaced = true;
    if (!replaced) {
      sources.push_back({key, {torch::Tensor(), lin}});
      specs.push_back({key, dtype, shape});
    }
  }
  const auto st = to_scalar_type(dtype);
  write_checkpoint(
      dir, specs,
      [&](const TensorSpec& spec, uint8_t* out) {
        for (const auto& [name, src] : sources) {
          if (name != spec.name) continue;
          torch::Tensor t = src.stored;
          if (src.built) {
            const Linear& lin = *src.built;
            t = lin.dense_weight().to(torch::kFloat32);
            if (merge_lora && lin.lora)
              t = t + torch::mm(lin.lora->B.to(torch::kFloat32), lin.lora->A.to(torch::kFloat32)) * lin.lora->scale;
          }
          auto c = t.detach().to(torch::kCPU).to(st).contiguous();
          std::memcpy(out, c.data_ptr(), spec.nbytes());
          return;
        }
      },
      5ull << 30);
  ModelConfig c = config_;
  c.torch_dtype = dtype == StDType::BF16 ? "bfloat16" : dtype == StDType::F16 ? "float16" : "float32";
  write_file_atomic(path_join(dir, "config.json"), to_hf_json(c).dump(2) + "\n");
}

}  // namespace synthpert::engine
