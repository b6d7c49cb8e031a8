// safetensors reader/writer: round trips, and every malformed input gives a
// clear InputError instead of a crash (including a seeded mutation fuzz loop
// over the header parser, the same entry point as fuzz_safetensors_header.cpp).
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <random>

#include "common/error.h"
#include "common/fs.h"
#include "engine/safetensors.h"
#include "engine_test_util.h"

using namespace synthpert;
using namespace synthpert::engine;

namespace {

std::string make_file(const std::string& header_json, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header_json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header_json + std::string(data_bytes, '\x01');
}

std::string error_of(const std::string& bytes) {
  try {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                             bytes.size(), "f.safetensors");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("write then read round-trips names, dtypes, shapes and bytes", "[safetensors]") {
  test::TempDir dir("st");
  std::vector<TensorSpec> specs = {{"a", StDType::F32, {2, 3}},
                                   {"b.weight", StDType::BF16, {5}},
                                   {"empty", StDType::F16, {0, 4}},
                                   {"ids", StDType::I64, {3}}};
  write_safetensors(dir.path + "/x.safetensors", specs, [](const TensorSpec& s, uint8_t* out) {
    for (uint64_t i = 0; i < s.nbytes(); ++i) out[i] = static_cast<uint8_t>(i * 7 + s.name.size());
  });
  SafetensorsFile f(dir.path + "/x.safetensors");
  REQUIRE(f.header().tensors.size() == 4);
  CHECK(f.header().metadata.at("format") == "pt");
  CHECK(f.header().data_start % 8 == 0);
  for (const auto& s : specs) {
    const TensorInfo* t = f.find(s.name);
    REQUIRE(t);
    CHECK(t->dtype == s.dtype);
    CHECK(t->shape == s.shape);
    for (uint64_t i = 0; i < s.nbytes(); ++i)
      REQUIRE(f.data(*t)[i] == static_cast<uint8_t>(i * 7 + s.name.size()));
  }
}

TEST_CASE("reads a file laid out by the python reference's format reading", "[safetensors]") {
  // A header written by hand exactly as the format specification describes.
  const std::string h = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}})";
  std::string bytes = make_file(h, 0);
  float vals[2] = {1.5f, -2.25f};
  bytes.append(reinterpret_cast<const char*>(vals), 8);
  test::TempDir dir("hand");
  write_file_atomic(dir.path + "/m.safetensors", bytes);
  SafetensorsFile f(dir.path + "/m.safetensors");
  float got[2];
  std::memcpy(got, f.data(*f.find("w")), 8);
  CHECK(got[0] == 1.5f);
  CHECK(got[1] == -2.25f);
  CHECK(f.header().metadata.at("k") == "v");
}

TEST_CASE("malformed headers are rejected with a message naming the rule", "[safetensors]") {
  CHECK_THAT(error_of("abc"), Catch::Contains("too short"));
  std::string huge(8, '\xff');
  CHECK_THAT(error_of(huge), Catch::Contains("100 MB"));
  std::string past = make_file("{}", 0);
  past[0] = 50;
  CHECK_THAT(error_of(past), Catch::Contains("past the end"));
  CHECK_THAT(error_of(make_file("{not json", 0)), Catch::Contains("not valid JSON"));
  CHECK_THAT(error_of(make_file("[1,2]", 0)), Catch::Contains("JSON object"));
  CHECK_THAT(error_of(make_file(R"({"t":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", 1)),
             Catch::Contains("unsupported dtype 'Q7'"));
  CHECK_THAT(error_of(make_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("need 12"));
  CHECK_THAT(error_of(make_file(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)),
             Catch::Contains("truncated"));
  CHECK_THAT(error_of(make_file(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
             Catch::Contains("non-negative"));
  CHECK_THAT(error_of(make_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4)),
             Catch::Contains("begin 4 > end 0"));
  CHECK_THAT(error_of(make_file(
                 R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 8)),
             Catch::Contains("overlap"));
  CHECK_THAT(error_of(make_file(R"({"t":{"dtype":"F32","shape":[1]}})", 4)),
             Catch::Contains("data_offsets"));
  // Beside a 0 the product is 0 whatever the others; each must still fit int64.
  CHECK_THAT(error_of(make_file(R"({"t":{"dtype":"U8","shape":[0,9223372036854775808],"data_offsets":[0,0]}})", 0)),
             Catch::Contains("shape entry 9223372036854775808 is too large"));
  const std::string empty = make_file(R"({"t":{"dtype":"U8","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}})", 0);
  const auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(empty.data()), empty.size(), empty.size(),
                                          "f.safetensors");
  CHECK(h.tensors.at(0).numel() == 0);
}

TEST_CASE("saving a checkpoint into a folder with the other layout leaves only the new weights", "[safetensors]") {
  test::TempDir dir("relayout");
  auto c = preset_config(Arch::kLlama, "tiny");
  InitOptions sharded;
  sharded.seed = 1;
  sharded.max_shard_bytes = 20000;
  init_model(c, dir.path, sharded);
  REQUIRE(path_exists(dir.path + "/model.safetensors.index.json"));
  InitOptions single;
  single.seed = 2;
  init_model(c, dir.path, single);
  for (const auto& entry : std::filesystem::directory_iterator(dir.path))
    CHECK(entry.path().filename().string().find("-of-") == std::string::npos);
  CHECK_FALSE(path_exists(dir.path + "/model.safetensors.index.json"));
  test::TempDir ref("relayout-ref");
  init_model(c, ref.path, single);
  InferenceGuard g;
  const auto ids = torch::tensor(test::random_ids(7, c.vocab_size, 1)).unsqueeze(0);
  CHECK(torch::equal(Transformer::load(dir.path).forward(ForwardBatch::from_ids(ids)),
                     Transformer::load(ref.path).forward(ForwardBatch::from_ids(ids))));
  // And back to shards: the single file goes.
  sharded.seed = 3;
  init_model(c, dir.path, sharded);
  CHECK_FALSE(path_exists(dir.path + "/model.safetensors"));
  init_model(c, ref.path, sharded);
  CHECK(torch::equal(Transformer::load(dir.path).forward(ForwardBatch::from_ids(ids)),
                     Transformer::load(ref.path).forward(ForwardBatch::from_ids(ids))));
}

TEST_CASE("weights larger than the disk's free space are refused before anything is written", "[safetensors]") {
  test::TempDir dir("too-large");
  const std::string out = dir.path + "/not/yet/made";
  // 2^62 bytes: no disk has that free, and the check must come before any fill.
  bool filled = false;
  const std::vector<TensorSpec> specs = {{"w", StDType::F32, {int64_t{1} << 60}}};
  CHECK_THROWS_WITH(write_checkpoint(out, specs, [&](const TensorSpec&, uint8_t*) { filled = true; }, uint64_t{1} << 63),
                    Catch::Contains("GB of weights into " + out) && Catch::Contains("GB free"));
  CHECK_FALSE(filled);
  CHECK_FALSE(std::filesystem::exists(dir.path + "/not"));
}

TEST_CASE("a checkpoint whose tensor shape disagrees with config.json is refused", "[safetensors]") {
  test::TempDir dir("shape");
  auto c = preset_config(Arch::kLlama, "tiny");
  init_model(c, dir.path, {});
  auto j = nlohmann::json::parse(read_file(dir.path + "/config.json"));
  j["intermediate_size"] = 100;
  write_file_atomic(dir.path + "/config.json", j.dump());
  try {
    Transformer::load(dir.path);
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK_THAT(e.what(), Catch::Contains("mlp.gate_proj.weight") && Catch::Contains("[100, 64]"));
  }
}

TEST_CASE("a truncated checkpoint file is refused, not read past its end", "[safetensors]") {
  test::TempDir dir("trunc");
  init_model(preset_config(Arch::kLlama, "tiny"), dir.path, {});
  const std::string path = dir.path + "/model.safetensors";
  std::string bytes = read_file(path);
  write_file_atomic(path, bytes.substr(0, bytes.size() - 100));
  CHECK_THROWS_WITH(Transformer::load(dir.path), Catch::Contains("truncated"));
}

TEST_CASE("a shard index naming a folder is refused, naming the index or the path", "[safetensors]") {
  test::TempDir dir("bad-shard");
  auto c = preset_config(Arch::kLlama, "tiny");
  InitOptions sharded;
  sharded.max_shard_bytes = 20000;
  init_model(c, dir.path, sharded);
  const std::string index = dir.path + "/model.safetensors.index.json";
  auto j = nlohmann::json::parse(read_file(index));
  for (const char* bad : {"", ".", ".."}) {
    INFO("shard name '" << bad << "'");
    auto k = j;
    k["weight_map"].begin().value() = bad;
    write_file_atomic(index, k.dump());
    CHECK_THROWS_WITH(Transformer::load(dir.path), Catch::Contains("must be a plain file name"));
  }
  // mmap would accept a folder and fail later with "No such device".
  CHECK_THROWS_WITH(SafetensorsFile(dir.path), Catch::Contains("not a regular file"));
}

TEST_CASE("mutated headers never crash the parser", "[safetensors][fuzz]") {
  const std::string valid = make_file(
      R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},"__metadata__":{"format":"pt"}})",
      16);
  std::mt19937_64 rng(1234);
  int rejected = 0, accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string m = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0: m[rng() % m.size()] = static_cast<char>(rng()); break;
        case 1: m.resize(rng() % (m.size() + 1)); break;
        case 2: m.insert(rng() % (m.size() + 1), 1, static_cast<char>("0123456789[]{},:\"-"[rng() % 18])); break;
        case 3: if (!m.empty()) m.erase(rng() % m.size(), 1); break;
      }
      if (m.empty()) break;
    }
    try {
      const auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(m.data()), m.size(),
                                              m.size(), "fuzz");
      for (const auto& t : h.tensors) REQUIRE(h.data_start + t.end <= m.size());
      ++accepted;
    } catch (const InputError&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
  CHECK(accepted > 0);
}
