// The server's model thread: requests share the continuous batch, tasks
// (prediction scoring) run between two steps.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>

#include "apps/server/inference_worker.h"
#include "tests/engine/engine_test_util.h"

using namespace synthpert;

TEST_CASE("a task runs between steps while requests before it wait for a row", "[server]") {
  test::TempDir dir("worker");
  const auto model = test::small_test_model(dir.path, test::small_test_config(engine::Arch::kLlama), 3);
  server::InferenceWorker worker(model, {}, /*max_rows=*/1, /*capacity=*/256);
  std::atomic<int64_t> long_tokens{0};
  std::promise<void> long_done, short_done, task_done;
  auto request = [&](int64_t budget, std::promise<void>& done, std::atomic<int64_t>* count) {
    engine::SequenceRequest r;
    r.prompt = test::random_ids(4, model.config().vocab_size, static_cast<uint64_t>(budget));
    r.max_new_tokens = budget;
    r.on_token = [count](int64_t) {
      if (count) ++*count;
      return true;
    };
    r.on_finish = [&done](const engine::GenerateResult&) { done.set_value(); };
    r.on_error = [&done](const std::string& m) { done.set_exception(std::make_exception_ptr(std::runtime_error(m))); };
    return r;
  };
  // The long request takes the only row; the short one waits for it; the
  // task, queued behind the short one, needs no row.
  worker.submit(request(120, long_done, &long_tokens));
  worker.submit(request(3, short_done, nullptr));
  int64_t tokens_when_task_ran = -1;
  worker.submit_task([&] {
    tokens_when_task_ran = long_tokens.load();
    task_done.set_value();
  }, [&](const std::string& m) { task_done.set_exception(std::make_exception_ptr(std::runtime_error(m))); });
  task_done.get_future().get();
  long_done.get_future().get();
  short_done.get_future().get();
  CHECK(tokens_when_task_ran >= 0);
  CHECK(tokens_when_task_ran < 120);  // not after the long generation ended
}
