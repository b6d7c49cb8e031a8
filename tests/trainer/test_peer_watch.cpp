// The peer watch of a data-parallel run (trainer/peer_watch.h) against a
// store the test writes to by hand, playing the other processes: one that
// beats, one that falls silent, one that finishes, one that reports a loss,
// and a store that fails or stops answering. (tests/trainer/test_cli.cpp
// freezes a real process of a gloo pair.)
//
// Times here are lower bounds the watch must respect (no report before the
// deadline) and generous upper bounds for a loaded machine.
//
// libtorch before Catch: c10 defines its own CHECK, and Catch's must be the
// one these tests use.
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "trainer/peer_watch.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

using namespace synthpert;
using trainer::BeatStore;
using trainer::PeerWatch;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// The reports a watch makes, and when the first came.
struct Reports {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> whys;
  Clock::time_point first;

  PeerWatch::OnLost handler() {
    return [this](const std::string& why) {
      std::lock_guard<std::mutex> lock(mu);
      if (whys.empty()) first = Clock::now();
      whys.push_back(why);
      cv.notify_all();
    };
  }
  // The first report, or nothing after `limit`.
  std::optional<std::string> wait(milliseconds limit) {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, limit, [this] { return !whys.empty(); })) return std::nullopt;
    return whys.front();
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return whys.size();
  }
};

// An in-memory store that can be made to fail every call, or to hold every
// call until released (a frozen server).
class TestStore : public BeatStore {
 public:
  int64_t add(const std::string& key, int64_t delta) override {
    std::unique_lock<std::mutex> lock(mu_);
    enter(lock);
    return counters_[key] += delta;
  }
  std::optional<std::string> get_if_set(const std::string& key) override {
    std::unique_lock<std::mutex> lock(mu_);
    enter(lock);
    const auto it = texts_.find(key);
    return it == texts_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  void set(const std::string& key, const std::string& value) override {
    std::unique_lock<std::mutex> lock(mu_);
    enter(lock);
    texts_[key] = value;
  }
  void fail() {
    std::lock_guard<std::mutex> lock(mu_);
    failing_ = true;
  }
  void freeze(bool frozen) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      frozen_ = frozen;
    }
    thaw_.notify_all();
  }

 private:
  void enter(std::unique_lock<std::mutex>& lock) {
    thaw_.wait(lock, [this] { return !frozen_; });
    if (failing_) throw std::runtime_error("Connection reset by peer");
  }
  std::mutex mu_;
  std::condition_variable thaw_;
  bool failing_ = false, frozen_ = false;
  std::map<std::string, int64_t> counters_;
  std::map<std::string, std::string> texts_;
};

// Beats for `rank` every 20 ms on a thread until stopped; the time of the
// last beat is kept.
class FakePeer {
 public:
  FakePeer(std::shared_ptr<BeatStore> store, int64_t rank)
      : store_(std::move(store)), rank_(rank), thread_([this] { run(); }) {}
  ~FakePeer() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Clock::time_point last_beat() const { return last_; }

 private:
  void run() {
    while (!stop_) {
      store_->add(PeerWatch::beat_key(rank_), 1);
      last_ = Clock::now();
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  std::shared_ptr<BeatStore> store_;
  int64_t rank_;
  std::atomic<bool> stop_{false};
  Clock::time_point last_ = Clock::now();
  std::thread thread_;
};

int64_t beats_of(BeatStore& store, int64_t rank) { return store.add(PeerWatch::beat_key(rank), 0); }

}  // namespace

TEST_CASE("the peer watch's beat interval is an eighth of the deadline, within 10 ms and 5 s", "[dist]") {
  CHECK(PeerWatch::interval_for(milliseconds(800)) == milliseconds(100));
  CHECK(PeerWatch::interval_for(milliseconds(40)) == milliseconds(10));
  CHECK(PeerWatch::interval_for(milliseconds(60000)) == milliseconds(5000));
}

TEST_CASE("a watched process that falls silent is reported once, after the deadline, and posted for the others",
          "[dist]") {
  // Through a c10d store, as the trainer's watch runs.
  auto store = trainer::beat_store(c10::make_intrusive<c10d::HashStore>());
  Reports reports;
  const milliseconds deadline(400);
  // Process 0 of 3 watches process 1.
  PeerWatch watch(store, "here", 0, 3, deadline, reports.handler());
  FakePeer peer(store, 1);
  std::this_thread::sleep_for(3 * deadline);
  CHECK(reports.count() == 0);      // a beating process is never lost
  CHECK(beats_of(*store, 0) >= 3);  // and the watch beats for its own process

  peer.stop();
  const auto why = reports.wait(milliseconds(20000));
  REQUIRE(why);
  CHECK(reports.first - peer.last_beat() >= deadline);
  CHECK(*why ==
        "process 1 of 3 sent no heartbeat for 0.4 s (noticed by process 0): it was most likely killed, froze or "
        "lost its node (its own output or the launcher's log may say why)");
  CHECK(store->get_if_set(PeerWatch::kLostKey) == *why);
  std::this_thread::sleep_for(2 * PeerWatch::interval_for(deadline));
  CHECK(reports.count() == 1);  // the watch reports once
}

TEST_CASE("a loss another process posted reaches a watch whose own peer still beats", "[dist]") {
  auto store = std::make_shared<TestStore>();
  Reports reports;
  // Process 2 of 3 watches process 0, which keeps beating; the deadline is
  // far off, so only the posted loss can end the wait early.
  PeerWatch watch(store, "here", 2, 3, milliseconds(60000), reports.handler());
  FakePeer peer(store, 0);
  const std::string posted = "process 1 of 3 sent no heartbeat for 60 s (noticed by process 0): ...";
  store->set(PeerWatch::kLostKey, posted);
  const auto why = reports.wait(milliseconds(20000));
  REQUIRE(why);
  CHECK(*why == posted);
}

TEST_CASE("a process that finished is not lost, and process 0 ending waits for the others' marks", "[dist]") {
  auto store = std::make_shared<TestStore>();
  Reports reports;
  std::atomic<bool> marked{false};
  std::thread late_peer;
  {
    PeerWatch watch(store, "here", 0, 3, milliseconds(600), reports.handler());
    // Process 1 (the watched one) has ended: silent for three deadlines.
    store->add(PeerWatch::beat_key(1), PeerWatch::kFinished);
    std::this_thread::sleep_for(milliseconds(1800));
    CHECK(reports.count() == 0);
    // Process 2 ends 300 ms after process 0 starts ending.
    late_peer = std::thread([&] {
      std::this_thread::sleep_for(milliseconds(300));
      marked = true;
      store->add(PeerWatch::beat_key(2), PeerWatch::kFinished);
    });
  }
  CHECK(marked);  // the watch's end waited for it
  late_peer.join();
  CHECK(beats_of(*store, 0) >= PeerWatch::kFinished);
}

TEST_CASE("process 0 ending by an exception marks itself finished without waiting for the others", "[dist]") {
  auto store = std::make_shared<TestStore>();
  Reports reports;
  const milliseconds deadline(8000);
  Clock::time_point thrown;
  try {
    PeerWatch watch(store, "here", 0, 2, deadline, reports.handler());
    thrown = Clock::now();
    throw std::runtime_error("a failed gate");
  } catch (const std::runtime_error&) {
  }
  // Waiting would take the whole deadline: process 1 never marks.
  CHECK(Clock::now() - thrown < deadline);
  CHECK(beats_of(*store, 0) >= PeerWatch::kFinished);
  CHECK(reports.count() == 0);
}

TEST_CASE("a store that fails is reported as process 0 lost, with the store's error", "[dist]") {
  auto store = std::make_shared<TestStore>();
  Reports reports;
  // Process 1 of 2 watches process 0, which beats.
  PeerWatch watch(store, "10.0.0.1:29500", 1, 2, milliseconds(4000), reports.handler());
  {
    FakePeer peer(store, 0);
    std::this_thread::sleep_for(milliseconds(300));
  }
  store->fail();
  const auto why = reports.wait(milliseconds(20000));
  REQUIRE(why);
  CHECK(*why ==
        "the rendezvous store at 10.0.0.1:29500 (served by process 0) failed (Connection reset by peer): process 0 "
        "was most likely killed, froze or lost its node");
}

TEST_CASE("a store that stops answering is reported after the deadline, though its calls never return", "[dist]") {
  auto store = std::make_shared<TestStore>();
  Reports reports;
  const milliseconds deadline(500);
  const auto interval = PeerWatch::interval_for(deadline);
  Clock::time_point ending;
  {
    PeerWatch watch(store, "10.0.0.1:29500", 1, 2, deadline, reports.handler());
    for (int i = 0; i < 10; ++i) {  // process 0 beats, then its store freezes
      store->add(PeerWatch::beat_key(0), 1);
      std::this_thread::sleep_for(milliseconds(30));
    }
    const auto frozen_at = Clock::now();
    store->freeze(true);
    const auto why = reports.wait(milliseconds(20000));
    REQUIRE(why);
    // The last answer came at most an interval before the freeze.
    CHECK(reports.first - frozen_at >= deadline - 2 * interval);
    CHECK(*why ==
          "the rendezvous store at 10.0.0.1:29500 (served by process 0) did not answer within 0.5 s: process 0 was "
          "most likely killed, froze or lost its node");
    ending = Clock::now();
  }  // leaves the blocked call behind instead of waiting for it
  CHECK(Clock::now() - ending < milliseconds(20000));
  CHECK(reports.count() == 1);
  store->freeze(false);  // the call left behind returns, reporting nothing more
  std::this_thread::sleep_for(4 * interval);
  CHECK(reports.count() == 1);
}
