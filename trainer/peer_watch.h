// Notices a process of a data-parallel run that stopped without a word:
// killed (kill -9, out of host memory, a lost node) or frozen as a whole
// (SIGSTOP, a stalled node). Its peers would otherwise learn of it only from
// the backend: under gloo at once for a killed process but not for a frozen
// one, under NCCL only when --dist-timeout (30 min by default) runs out, both
// while blocked in a collective that cannot be interrupted. A process whose
// main thread hangs (in a driver call, say) while the process lives still
// beats: that is left to --dist-timeout.
//
// Every process beats a counter in the rendezvous store, and watches the
// counter of the next process in rank order (the last watches process 0). A
// counter unchanged for `deadline` means that process is lost: the watcher
// posts why in the store, where every other watcher reads it at its next
// beat, and each calls its `on_lost`. One process watching one other keeps
// the store's load linear in the world size, and with at least one process
// alive and one lost, some live process watches a lost one. A store that
// fails, or does not answer within `deadline` (process 0, which serves it,
// killed or frozen), is a loss too.
//
// Two threads: one makes the store calls, which can block for good on a
// frozen store (libtorch 1.13's TCPStore client waits without a limit); the
// other only looks at the clock, and reports a store that stopped answering.
//
// A process that ends marks its counter finished, so its watcher does not
// take it for lost. Ending normally (not by an exception), process 0 also
// waits, at most `deadline`, for every other process's mark before its store
// goes away with it: a peer still watching would take the closed store for
// a lost process 0.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace synthpert::trainer {

// The store calls the watch makes: c10d::Store's, narrowed, so tests can
// stand in a store that fails or stops answering. Calls may block or throw.
class BeatStore {
 public:
  virtual ~BeatStore() = default;
  // Adds `delta` to the counter `key` (0 when missing) and returns it.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  virtual std::optional<std::string> get_if_set(const std::string& key) = 0;
  virtual void set(const std::string& key, const std::string& value) = 0;
};

std::shared_ptr<BeatStore> beat_store(c10::intrusive_ptr<c10d::Store> store);

// A libtorch error's own message on one line, without its C++ stack trace,
// cut to `max_chars` (then "..."): for messages that quote a backend's or a
// store's failure.
std::string error_line(const std::exception& e, size_t max_chars);

class PeerWatch {
 public:
  // Called at most once, on one of the watch's threads, with what was lost.
  using OnLost = std::function<void(const std::string& why)>;

  // `store`: a client of its own (the watch's calls must not wait behind the
  // process group's). `store_name` says where the store is, for the message
  // of a store that stopped answering.
  PeerWatch(std::shared_ptr<BeatStore> store, std::string store_name, int64_t rank, int64_t world,
            std::chrono::milliseconds deadline, OnLost on_lost);
  // Stops watching and marks this process finished. A store call blocked for
  // good is left behind on its thread (which then owns what it uses) after
  // twice the deadline.
  ~PeerWatch();
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;

  // Time between beats: an eighth of the deadline, within [10 ms, 5 s].
  static std::chrono::milliseconds interval_for(std::chrono::milliseconds deadline);

  // A beat counter at or above this marks a process that ended.
  static constexpr int64_t kFinished = int64_t{1} << 48;
  static std::string beat_key(int64_t rank);
  static const char* const kLostKey;

 private:
  struct Shared;
  static void make_calls(const std::shared_ptr<Shared>& s);
  static void watch_clock(const std::shared_ptr<Shared>& s);

  std::shared_ptr<Shared> shared_;
  int uncaught_at_start_;
  std::thread caller_, clock_;
};

}  // namespace synthpert::trainer
