// The server's model thread: requests share the continuous batch, tasks
// (prediction scoring) run between two steps.
#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
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

TEST_CASE("generation and tasks share the worker's prefix store; its counters reach stats()", "[server]") {
  test::TempDir dir("worker-prefix");
  const auto model = test::small_test_model(dir.path, test::small_test_config(engine::Arch::kLlama), 4);
  const auto prompt = test::random_ids(9, model.config().vocab_size, 5);
  auto generate = [&](server::InferenceWorker& worker) {
    std::promise<engine::GenerateResult> done;
    engine::SequenceRequest r;
    r.prompt = prompt;
    r.max_new_tokens = 4;
    r.on_finish = [&done](const engine::GenerateResult& g) { done.set_value(g); };
    r.on_error = [&done](const std::string& m) { done.set_exception(std::make_exception_ptr(std::runtime_error(m))); };
    worker.submit(std::move(r));
    return done.get_future().get().tokens;
  };
  // Runs `f` on the worker thread and waits for it. The worker updates its
  // stats after each task, so stats() read in a second task sees the first's.
  auto on_worker = [](server::InferenceWorker& worker, const std::function<void()>& f) {
    std::promise<void> done;
    worker.submit_task(
        [&] { f(), done.set_value(); },
        [&](const std::string& m) { done.set_exception(std::make_exception_ptr(std::runtime_error(m))); });
    done.get_future().get();
  };
  server::InferenceWorker plain(model, {}, 2, 64);
  const auto expected = generate(plain);
  on_worker(plain, [&] { CHECK(plain.prefixes() == nullptr); });
  CHECK(plain.stats().prefix_entries == 0);

  server::InferenceWorker worker(model, {}, 2, 64, 0, /*prefix_tokens=*/100);
  CHECK(generate(worker) == expected);
  // The second request copies all of its prompt but the last token.
  CHECK(generate(worker) == expected);
  int64_t reused_in_store = -1;
  on_worker(worker, [&] {
    REQUIRE(worker.prefixes() != nullptr);
    reused_in_store = worker.prefixes()->stats().tokens_reused;
    // A task finds what generation kept.
    CHECK(worker.prefixes()->longest_match(model, prompt, -1).length == 9);
  });
  CHECK(reused_in_store == 8);
  on_worker(worker, [&] {
    const auto s = worker.stats();
    CHECK(s.prefix_entries == 1);
    CHECK(s.prefix_tokens_held == 9 + 3);  // the prompt and the reply but its last token
    CHECK(s.prefix.tokens_reused == 8);
    CHECK(s.prefix.tokens_kept == 9 + 12);
    CHECK(s.prefix.lookups == 3);
  });
}

TEST_CASE("requests that arrive together run the system prompt they share once", "[server]") {
  test::TempDir dir("worker-burst");
  const auto model = test::small_test_model(dir.path, test::small_test_config(engine::Arch::kLlama), 6);
  const int64_t V = model.config().vocab_size;
  const auto system = test::random_ids(20, V, 7);
  const std::vector<std::vector<int64_t>> prompts = {test::joined(system, {1, 2}), test::joined(system, {3}),
                                                     test::joined(system, {4, 5, 6})};
  auto burst = [&](server::InferenceWorker& worker) {
    // A task holds the worker until all three requests are queued, so they
    // join the batch at the same step, as a burst of clients would.
    std::promise<void> queued, task_done;
    worker.submit_task([&] { queued.get_future().wait(), task_done.set_value(); }, [](const std::string&) {});
    std::vector<std::promise<engine::GenerateResult>> done(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      engine::SequenceRequest r;
      r.prompt = prompts[i];
      r.max_new_tokens = 3;
      r.on_finish = [&done, i](const engine::GenerateResult& g) { done[i].set_value(g); };
      r.on_error = [&done, i](const std::string& m) {
        done[i].set_exception(std::make_exception_ptr(std::runtime_error(m)));
      };
      worker.submit(std::move(r));
    }
    queued.set_value();
    task_done.get_future().get();
    std::vector<std::vector<int64_t>> tokens;
    for (auto& d : done) tokens.push_back(d.get_future().get().tokens);
    return tokens;
  };
  server::InferenceWorker plain(model, {}, 3, 64);
  const auto expected = burst(plain);
  server::InferenceWorker worker(model, {}, 3, 64, 0, /*prefix_tokens=*/200);
  CHECK(burst(worker) == expected);
  // The 20 shared tokens ran once, before the rows' prefill, and each row
  // copied them. Stats are updated after each step, so a task sees them.
  std::promise<engine::PrefixStore::Stats> seen;
  worker.submit_task([&] { seen.set_value(worker.stats().prefix); }, [](const std::string&) {});
  CHECK(seen.get_future().get().tokens_reused == 3 * 20);
}
