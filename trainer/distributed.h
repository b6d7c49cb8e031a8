// Data parallelism through libtorch's c10d: a TCPStore rendezvous and a gloo
// (CPU) or NCCL (CUDA, when libtorch has it) process group.
//
// Launch: torchrun-style RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT (under torchrun itself, its agent's store); or Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID with
// MASTER_ADDR (and MASTER_PORT, default 29500) exported by the batch script.
// No variables: one process, no communication at all.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "engine/torch_compat.h"

namespace synthpert::trainer {

struct DistEnv {
  int64_t rank = 0, world = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::string launcher = "single";  // "single" | "torchrun" | "slurm"
  // torchrun's agent already serves the rendezvous store on MASTER_PORT
  // (TORCHELASTIC_USE_AGENT_STORE=True): every process joins it as a client,
  // under a key prefix of its restart attempt, as PyTorch's workers do.
  bool agent_store = false;
  int64_t restart_count = 0;  // TORCHELASTIC_RESTART_COUNT
};

// The rendezvous or a collective failed: another process exited or was killed
// without reaching a failure gate, the network between them failed, or a
// process waited past --dist-timeout. The message says which operation.
class CommunicationError : public std::runtime_error {
 public:
  explicit CommunicationError(const std::string& what) : std::runtime_error(what) {}
};

using GetEnv = std::function<const char*(const char*)>;
// Reads the launch variables (torchrun's take precedence over Slurm's); bad
// or inconsistent values are an InputError naming the variable.
DistEnv read_dist_env(const GetEnv& getenv);
DistEnv read_dist_env();

// The CUDA device index of the process with `local_rank` on a node where it
// sees `visible` devices: its own when every process sees them all
// (torchrun), the only one when each sees one (Slurm binding a GPU per task
// through CUDA_VISIBLE_DEVICES). Anything else is an InputError.
int64_t local_cuda_index(int64_t local_rank, int64_t visible);

// Told, on another thread, why a process of the group is lost; it must end
// this process (whatever was waiting in a collective cannot be woken).
using PeerLostHandler = std::function<void(const std::string& why)>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  // No launcher variables: a no-op communicator. Otherwise (a world of one
  // included) gloo for CPU devices, NCCL for CUDA devices. A rendezvous that
  // fails or runs past `timeout` is a CommunicationError, as is any failed
  // collective later. A positive `heartbeat` in a world of two or more
  // watches the other processes (trainer/peer_watch.h): one silent for that
  // long is reported to the peer-lost handler.
  static std::unique_ptr<Communicator> create(const DistEnv& env, torch::Device device,
                                              std::chrono::milliseconds timeout,
                                              std::chrono::milliseconds heartbeat = std::chrono::milliseconds(0));

  int64_t rank() const { return rank_; }
  int64_t world() const { return world_; }
  const std::string& backend() const { return backend_; }

  // The handler of a lost process (the default writes `why` to stderr and
  // exits with status 1). A caller with more to say wraps the one it finds.
  PeerLostHandler peer_lost_handler() const;
  void set_peer_lost_handler(PeerLostHandler handler);
  // Calls the handler; ends the process with status 1 should it return.
  [[noreturn]] void report_peer_lost(const std::string& why) const;

  // Sums `flat` (1-D, contiguous) over all processes in place, in buckets of
  // at most `bucket_bytes`; all buckets are in flight at once. A buffer on
  // another device than the process group's (the host, under NCCL) goes
  // through a copy; the sum is there when the call returns.
  virtual void all_reduce_sum(torch::Tensor& flat, int64_t bucket_bytes) = 0;
  // Starts summing `t` (1-D, contiguous) over all processes in place and
  // returns a function that waits for the result. Every process must start
  // the same reductions in the same order. `t` lives on the process group's
  // device (the gradients do).
  virtual std::function<void()> start_all_reduce_sum(torch::Tensor t) = 0;

 protected:
  int64_t rank_ = 0, world_ = 1;
  std::string backend_ = "none";

 private:
  mutable std::mutex handler_mu_;
  PeerLostHandler on_peer_lost_;
};

}  // namespace synthpert::trainer
