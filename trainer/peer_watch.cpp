#include "trainer/peer_watch.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <vector>

#include "common/error.h"

namespace synthpert::trainer {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class C10dBeatStore : public BeatStore {
 public:
  explicit C10dBeatStore(c10::intrusive_ptr<c10d::Store> store) : store_(std::move(store)) {}
  int64_t add(const std::string& key, int64_t delta) override { return store_->add(key, delta); }
  std::optional<std::string> get_if_set(const std::string& key) override {
    if (!store_->check({key})) return std::nullopt;
    const auto bytes = store_->get(key);
    return std::string(bytes.begin(), bytes.end());
  }
  void set(const std::string& key, const std::string& value) override {
    store_->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  }

 private:
  c10::intrusive_ptr<c10d::Store> store_;
};

std::string seconds_text(milliseconds d) { return str_cat(static_cast<double>(d.count()) / 1000.0, " s"); }

}  // namespace

std::string error_line(const std::exception& e, size_t max_chars) {
  const auto* c10e = dynamic_cast<const c10::Error*>(&e);
  std::string s = c10e ? c10e->what_without_backtrace() : e.what();
  s = s.substr(0, s.find('\n'));
  return s.size() > max_chars ? s.substr(0, max_chars) + "..." : s;
}

std::shared_ptr<BeatStore> beat_store(c10::intrusive_ptr<c10d::Store> store) {
  return std::make_shared<C10dBeatStore>(std::move(store));
}

// What both threads share; the caller thread holds it too, so a call blocked
// for good may outlive the watch.
struct PeerWatch::Shared {
  std::shared_ptr<BeatStore> store;
  std::string store_name;
  int64_t rank, world, next;
  milliseconds deadline, interval;
  OnLost on_lost;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;         // the watch is ending
  bool wait_for_others = false;  // ... and not by an exception
  bool reported = false;
  bool calls_done = false;  // the caller thread made its last call
  Clock::time_point last_answer = Clock::now();

  // The caller thread's own: the watched counter and when it last changed.
  int64_t next_beats = -1;
  Clock::time_point next_changed = Clock::now();

  // Waits `d` or until the watch ends; true when it ends.
  bool wait(milliseconds d) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, d, [this] { return stopping; });
  }

  // Calls on_lost once, and never once the watch is ending.
  void report(const std::string& why) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (reported || stopping) return;
      reported = true;
    }
    cv.notify_all();
    on_lost(why);
  }

  // A store call that failed (`error`), or none answered for the deadline.
  std::string store_lost(const std::string& error) const {
    return str_cat("the rendezvous store at ", store_name, " (served by process 0) ",
                   error.empty() ? "did not answer within " + seconds_text(deadline) : "failed (" + error + ")",
                   ": process 0 was most likely killed, froze or lost its node");
  }

  // One beat and one look; returns why a process is lost, or "".
  std::string beat_and_look() {
    store->add(beat_key(rank), 1);
    if (auto posted = store->get_if_set(kLostKey)) return *posted;
    const int64_t beats = store->add(beat_key(next), 0);
    // Taken after the store answered, so a slow answer does not count as
    // the watched process's silence.
    const auto now = Clock::now();
    if (beats >= kFinished) return "";
    if (beats != next_beats) {
      next_beats = beats;
      next_changed = now;
      return "";
    }
    if (now - next_changed < deadline) return "";
    const std::string why = str_cat("process ", next, " of ", world, " sent no heartbeat for ", seconds_text(deadline),
                                    " (noticed by process ", rank,
                                    "): it was most likely killed, froze or lost its node (its own "
                                    "output or the launcher's log may say why)");
    store->set(kLostKey, why);
    return why;
  }

  // Marks this process finished; process 0 ending normally then waits, at
  // most the deadline, for the others' marks.
  void finish() {
    try {
      store->add(beat_key(rank), kFinished);
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!wait_for_others || rank != 0) return;
      }
      const auto give_up = Clock::now() + deadline;
      for (int64_t r = 1; r < world; ++r)
        while (store->add(beat_key(r), 0) < kFinished) {
          if (Clock::now() > give_up) return;
          std::this_thread::sleep_for(milliseconds(5));
        }
    } catch (const std::exception&) {
      // Ending anyway: a store that cannot take the mark has nobody left to
      // tell.
    }
  }
};

const char* const PeerWatch::kLostKey = "peer_watch/lost";

std::string PeerWatch::beat_key(int64_t rank) { return "peer_watch/beats/" + std::to_string(rank); }

milliseconds PeerWatch::interval_for(milliseconds deadline) {
  return std::clamp(deadline / 8, milliseconds(10), milliseconds(5000));
}

PeerWatch::PeerWatch(std::shared_ptr<BeatStore> store, std::string store_name, int64_t rank, int64_t world,
                     milliseconds deadline, OnLost on_lost)
    : shared_(std::make_shared<Shared>()), uncaught_at_start_(std::uncaught_exceptions()) {
  SP_CHECK(world >= 2 && rank >= 0 && rank < world, "PeerWatch: rank ", rank, " of ", world);
  SP_CHECK(store && deadline.count() > 0 && on_lost, "PeerWatch: needs a store, a positive deadline and a handler");
  Shared& s = *shared_;
  s.store = std::move(store);
  s.store_name = std::move(store_name);
  s.rank = rank;
  s.world = world;
  s.next = (rank + 1) % world;
  s.deadline = deadline;
  s.interval = interval_for(deadline);
  s.on_lost = std::move(on_lost);
  caller_ = std::thread(make_calls, shared_);
  clock_ = std::thread(watch_clock, shared_);
}

PeerWatch::~PeerWatch() {
  Shared& s = *shared_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.stopping = true;
    s.wait_for_others = std::uncaught_exceptions() == uncaught_at_start_;
  }
  s.cv.notify_all();
  clock_.join();
  bool done;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    done = s.cv.wait_for(lock, 2 * s.deadline, [&s] { return s.calls_done; });
  }
  if (done)
    caller_.join();
  else
    caller_.detach();
}

void PeerWatch::make_calls(const std::shared_ptr<Shared>& shared) {
  Shared& s = *shared;
  for (;;) {
    std::string why;
    try {
      why = s.beat_and_look();
      std::lock_guard<std::mutex> lock(s.mu);
      s.last_answer = Clock::now();
    } catch (const std::exception& e) {
      // A process ending by an error closes the store it serves while the
      // others are still unwinding from the same error: give their teardown
      // a moment to end this watch before calling it a loss.
      if (s.wait(std::min(s.interval, milliseconds(1000)))) break;
      why = s.store_lost(error_line(e, 200));
    }
    if (!why.empty()) {
      s.report(why);
      break;
    }
    if (s.wait(s.interval)) break;
  }
  // After a loss the handler normally ends the process; else the watch's
  // end comes, and with it the mark.
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait(lock, [&s] { return s.stopping; });
  }
  s.finish();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.calls_done = true;
  }
  s.cv.notify_all();
}

void PeerWatch::watch_clock(const std::shared_ptr<Shared>& shared) {
  Shared& s = *shared;
  std::unique_lock<std::mutex> lock(s.mu);
  while (!s.cv.wait_for(lock, s.interval, [&s] { return s.stopping || s.reported; })) {
    if (Clock::now() - s.last_answer > s.deadline) {
      lock.unlock();
      s.report(s.store_lost(""));
      return;
    }
  }
}

}  // namespace synthpert::trainer
