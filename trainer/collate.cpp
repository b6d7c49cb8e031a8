#include "trainer/collate.h"

#include <algorithm>

#include "common/error.h"

namespace synthpert::trainer {

namespace {

// Host buffers of one (B, T) batch, turned into tensors at the end.
struct Rows {
  int64_t B, T;
  std::vector<int64_t> ids, positions, segments, targets;
  std::vector<uint8_t> valid, target_mask;
  Rows(int64_t b, int64_t t)
      : B(b), T(t), ids(b * t, 0), positions(b * t, 0), segments(b * t, -1), targets(b * t, 0),
        valid(b * t, 0), target_mask(b * t, 0) {}

  // Places example `e` in row `r` from column `col` as segment `seg`.
  void place(const SftExample& e, int64_t r, int64_t col, int64_t seg) {
    const auto n = static_cast<int64_t>(e.ids.size());
    for (int64_t t = 0; t < n; ++t) {
      const int64_t k = r * T + col + t;
      ids[k] = e.ids[t];
      positions[k] = t;
      segments[k] = seg;
      valid[k] = 1;
      if (t + 1 < n) {
        targets[k] = e.ids[t + 1];
        target_mask[k] = e.loss_mask[t + 1];
      }
    }
  }

  TrainBatch finish(bool packed) {
    auto i64 = [&](std::vector<int64_t>& v) {
      return torch::from_blob(v.data(), {B, T}, torch::kInt64).clone();
    };
    auto b8 = [&](std::vector<uint8_t>& v) {
      return torch::from_blob(v.data(), {B, T}, torch::kUInt8).to(torch::kBool);
    };
    TrainBatch tb;
    tb.input.ids = i64(ids);
    tb.input.positions = i64(positions);
    tb.input.valid = b8(valid);
    if (packed) tb.input.segments = i64(segments);
    tb.targets = i64(targets);
    tb.target_mask = b8(target_mask);
    for (auto v : valid) tb.tokens += v;
    for (auto v : target_mask) tb.targets_count += v;
    return tb;
  }
};

}  // namespace

TrainBatch collate_padded(const std::vector<SftExample>& examples,
                          const std::vector<int64_t>& indices) {
  SP_CHECK(!indices.empty(), "collate: empty micro-batch");
  size_t T = 0;
  for (auto i : indices) T = std::max(T, examples[i].ids.size());
  Rows rows(static_cast<int64_t>(indices.size()), static_cast<int64_t>(T));
  for (size_t r = 0; r < indices.size(); ++r) rows.place(examples[indices[r]], r, 0, 0);
  return rows.finish(false);
}

TrainBatch collate_packed(const std::vector<SftExample>& examples,
                          const std::vector<int64_t>& indices, int64_t row_capacity) {
  SP_CHECK(!indices.empty(), "collate: empty micro-batch");
  std::vector<int64_t> order(indices);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return examples[a].ids.size() > examples[b].ids.size();
  });
  // First-fit decreasing: (row, column) of every example.
  std::vector<int64_t> fill;
  std::vector<std::pair<int64_t, int64_t>> where;
  for (auto i : order) {
    const auto n = static_cast<int64_t>(examples[i].ids.size());
    SP_CHECK(n <= row_capacity, "collate: example longer than the row capacity");
    size_t r = 0;
    while (r < fill.size() && fill[r] + n > row_capacity) ++r;
    if (r == fill.size()) fill.push_back(0);
    where.emplace_back(r, fill[r]);
    fill[r] += n;
  }
  Rows rows(static_cast<int64_t>(fill.size()), *std::max_element(fill.begin(), fill.end()));
  for (size_t k = 0; k < order.size(); ++k)
    rows.place(examples[order[k]], where[k].first, where[k].second, static_cast<int64_t>(k));
  return rows.finish(true);
}

}  // namespace synthpert::trainer
