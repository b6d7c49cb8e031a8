#include "trainer/distributed.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#ifdef SYNTHPERT_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SYNTHPERT_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "common/error.h"
#include "trainer/peer_watch.h"

namespace synthpert::trainer {

namespace {

int64_t env_int(const GetEnv& getenv, const char* name, int64_t fallback, bool required) {
  const char* v = getenv(name);
  if (!v || !*v) {
    SP_CHECK_INPUT(!required, "environment variable ", name,
                   " is not set (needed for a multi-process launch)");
    return fallback;
  }
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  SP_CHECK_INPUT(end && *end == '\0' && x >= 0, "environment variable ", name,
                 " must be a non-negative integer, got '", v, "'");
  return x;
}

// Runs `f`, turning the backend's failure into a CommunicationError that says
// what most likely happened. A peer that died shows up as a connection error
// (gloo) or a timeout (NCCL), neither of which names the cause.
template <typename F>
auto guarded(const std::string& backend, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const CommunicationError&) {
    throw;
  } catch (const std::exception& e) {
    throw CommunicationError(str_cat(
        "a ", backend, " all-reduce with the other processes failed (", error_line(e, 300),
        "): another process most likely exited or was killed before it could report an error (its own "
        "output or the launcher's log says why), the network between them failed, or the wait ran past "
        "--dist-timeout"));
  }
}

class SingleProcess : public Communicator {
 public:
  void all_reduce_sum(torch::Tensor&, int64_t) override {}
  std::function<void()> start_all_reduce_sum(torch::Tensor) override { return [] {}; }
};

// The c10d process group types differ in base class between libtorch 1.13
// (ProcessGroup) and 2.x (Backend); only the calls used here are shared.
template <typename PG>
class ProcessGroupComm : public Communicator {
 public:
  ProcessGroupComm(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<PG> pg,
                   const DistEnv& env, std::string backend, torch::Device device)
      : store_(std::move(store)), pg_(std::move(pg)), device_(device) {
    rank_ = env.rank;
    world_ = env.world;
    backend_ = std::move(backend);
  }

  // Starts watching the other processes through `store` (see PeerWatch).
  void watch(c10::intrusive_ptr<c10d::Store> store, std::string store_name, std::chrono::milliseconds deadline) {
    watch_ = std::make_unique<PeerWatch>(beat_store(std::move(store)), std::move(store_name), rank_, world_, deadline,
                                         [this](const std::string& why) { report_peer_lost(why); });
  }

  void all_reduce_sum(torch::Tensor& flat, int64_t bucket_bytes) override {
    SP_CHECK(flat.dim() == 1 && flat.is_contiguous(), "all_reduce_sum: expects a flat buffer");
    if (!on_group_device(flat)) {
      // NCCL reduces device memory only, and a scalar such as the step's loss
      // lives on the CPU: it goes through a device copy. The copy back waits
      // for the reduction (it is ordered after it on the current stream), so
      // the caller reads the sum.
      auto staged = flat.to(device_);
      all_reduce_sum(staged, bucket_bytes);
      flat.copy_(staged);
      return;
    }
    const int64_t per = std::max<int64_t>(1, bucket_bytes / static_cast<int64_t>(flat.element_size()));
    std::vector<std::vector<torch::Tensor>> buckets;
    for (int64_t off = 0; off < flat.numel(); off += per)
      buckets.push_back({flat.narrow(0, off, std::min(per, flat.numel() - off))});
    guarded(backend_, [&] {
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (auto& b : buckets) works.push_back(pg_->allreduce(b, c10d::AllreduceOptions()));
      for (auto& w : works) w->wait();
    });
  }

  std::function<void()> start_all_reduce_sum(torch::Tensor t) override {
    SP_CHECK(t.dim() == 1 && t.is_contiguous(), "start_all_reduce_sum: expects a flat buffer");
    SP_CHECK(on_group_device(t), "start_all_reduce_sum: the buffer is on ", t.device(),
             ", the process group reduces on ", device_);
    // The work keeps the tensor list it was given; holding it here too keeps
    // the buffers alive on every backend until the wait.
    auto tensors = std::make_shared<std::vector<torch::Tensor>>(1, std::move(t));
    auto work = guarded(backend_, [&] { return pg_->allreduce(*tensors, c10d::AllreduceOptions()); });
    return [work, tensors, backend = backend_] { guarded(backend, [&] { work->wait(); }); };
  }

 private:
  // "cuda" without an index is the current device, where tensors made on
  // "cuda" live.
  bool on_group_device(const torch::Tensor& t) const {
    return t.device().type() == device_.type() && (!device_.has_index() || t.device().index() == device_.index());
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<PG> pg_;
  torch::Device device_;
  // Last, so it stops (and marks this process finished) before the process
  // group and the store it watches through go.
  std::unique_ptr<PeerWatch> watch_;
};

// The key prefix of the store a process of this launch reads and writes.
std::string store_prefix(const DistEnv& env) {
  return env.agent_store ? "/worker/attempt_" + std::to_string(env.restart_count) : std::string();
}

// A store client of the peer watch's own, so its calls never wait behind the
// process group's.
c10::intrusive_ptr<c10d::Store> watch_store(const DistEnv& env, std::chrono::milliseconds deadline) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = false;
  so.waitWorkers = false;
  so.timeout = deadline;
  c10::intrusive_ptr<c10d::Store> client = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  return c10::make_intrusive<c10d::PrefixStore>(store_prefix(env) + "/synthpert", client);
}

template <typename PG>
std::unique_ptr<Communicator> make_comm(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<PG> pg,
                                        const DistEnv& env, std::string backend, torch::Device device,
                                        std::chrono::milliseconds heartbeat) {
  auto comm = std::make_unique<ProcessGroupComm<PG>>(std::move(store), std::move(pg), env, std::move(backend), device);
  if (heartbeat.count() > 0 && env.world > 1)
    comm->watch(watch_store(env, heartbeat), env.master_addr + ":" + std::to_string(env.master_port), heartbeat);
  return comm;
}

// The rendezvous and the backend's process group.
std::unique_ptr<Communicator> create_group(const DistEnv& env, torch::Device device, std::chrono::milliseconds timeout,
                                           std::chrono::milliseconds heartbeat) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  if (env.agent_store) {
    // The agent's server counts its own clients; the workers only join it.
    so.isServer = false;
    so.waitWorkers = false;
    store = c10::make_intrusive<c10d::PrefixStore>(store_prefix(env),
                                                   c10::make_intrusive<c10d::TCPStore>(env.master_addr, so));
  } else {
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<size_t>(env.world);
    so.waitWorkers = true;
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  }
  if (device.is_cuda()) {
#ifdef SYNTHPERT_WITH_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world, opts);
    return make_comm(store, pg, env, "nccl", device, heartbeat);
#else
    throw InputError("this build has no NCCL process group (libtorch without CUDA)");
#endif
  }
#ifdef SYNTHPERT_WITH_GLOO
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  // GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch; else the
  // address the hostname resolves to (loopback when it does not resolve).
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  opts->devices.push_back(ifname && *ifname
                              ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                              : c10d::ProcessGroupGloo::createDefaultDevice());
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world, opts);
  return make_comm(store, pg, env, "gloo", device, heartbeat);
#else
  throw InputError("this build has no gloo process group (libtorch without gloo headers); "
                   "run data parallel on CUDA devices (NCCL)");
#endif
}

}  // namespace

DistEnv read_dist_env(const GetEnv& getenv) {
  DistEnv e;
  const bool torchrun = getenv("WORLD_SIZE") && *getenv("WORLD_SIZE");
  const bool slurm = !torchrun && getenv("SLURM_NTASKS") && *getenv("SLURM_NTASKS") &&
                     getenv("MASTER_ADDR") && *getenv("MASTER_ADDR");
  if (torchrun) {
    e.launcher = "torchrun";
    e.world = env_int(getenv, "WORLD_SIZE", 1, true);
    e.rank = env_int(getenv, "RANK", 0, e.world > 1);
    e.local_rank = env_int(getenv, "LOCAL_RANK", e.rank, false);
    const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
    e.agent_store = agent && std::string(agent) == "True";
    e.restart_count = env_int(getenv, "TORCHELASTIC_RESTART_COUNT", 0, false);
  } else if (slurm) {
    // Slurm sets SLURM_NTASKS for every job step; it is a launch only when
    // the batch script also exported MASTER_ADDR.
    e.launcher = "slurm";
    e.world = env_int(getenv, "SLURM_NTASKS", 1, true);
    e.rank = env_int(getenv, "SLURM_PROCID", 0, e.world > 1);
    e.local_rank = env_int(getenv, "SLURM_LOCALID", 0, false);
  } else {
    return e;
  }
  SP_CHECK_INPUT(e.world >= 1, e.launcher, " launch: world size must be at least 1");
  SP_CHECK_INPUT(e.rank < e.world, e.launcher, " launch: rank ", e.rank, " is not below the world size ",
                 e.world);
  if (e.world > 1) {
    const char* addr = getenv("MASTER_ADDR");
    SP_CHECK_INPUT(addr && *addr, "environment variable MASTER_ADDR is not set (the rank-0 host)");
    e.master_addr = addr;
  }
  e.master_port = env_int(getenv, "MASTER_PORT", 29500, false);
  SP_CHECK_INPUT(e.master_port > 0 && e.master_port < 65536, "MASTER_PORT must be a TCP port, got ",
                 e.master_port);
  return e;
}

int64_t local_cuda_index(int64_t local_rank, int64_t visible) {
  SP_CHECK_INPUT(visible > 0, "--device cuda: this process sees no CUDA device");
  if (visible == 1) return 0;
  SP_CHECK_INPUT(local_rank < visible, "--device cuda: local rank ", local_rank,
                 " has no GPU of its own: the process sees ", visible,
                 " (start at most that many processes per node, or give each one GPU)");
  return local_rank;
}

DistEnv read_dist_env() {
  return read_dist_env([](const char* name) { return std::getenv(name); });
}

std::unique_ptr<Communicator> Communicator::create(const DistEnv& env, torch::Device device,
                                                   std::chrono::milliseconds timeout,
                                                   std::chrono::milliseconds heartbeat) {
  // A launcher's world of one still gets a process group, so the backend
  // (NCCL on one GPU, gloo on one CPU) runs exactly as in a larger world.
  if (env.launcher == "single") return std::make_unique<SingleProcess>();
  try {
    return create_group(env, device, timeout, heartbeat);
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw CommunicationError(str_cat(
        "process ", env.rank, " of ", env.world, " could not form the process group at ", env.master_addr, ":",
        env.master_port, " (", error_line(e, 300), "): every process must start within --dist-timeout (",
        timeout.count() / 1000, " s) with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT, and process 0's "
        "host must accept connections on that port"));
  }
}

PeerLostHandler Communicator::peer_lost_handler() const {
  std::lock_guard<std::mutex> lock(handler_mu_);
  return on_peer_lost_;
}

void Communicator::set_peer_lost_handler(PeerLostHandler handler) {
  std::lock_guard<std::mutex> lock(handler_mu_);
  on_peer_lost_ = std::move(handler);
}

void Communicator::report_peer_lost(const std::string& why) const {
  // Held until the process ends: a caller replacing the handler meanwhile
  // (its run returning) waits, so the handler never outlives what it reads.
  std::lock_guard<std::mutex> lock(handler_mu_);
  if (on_peer_lost_) {
    on_peer_lost_(why);
  } else {
    std::fprintf(stderr, "process %lld of %lld stopped: %s\n", static_cast<long long>(rank_),
                 static_cast<long long>(world_), why.c_str());
  }
  std::fflush(nullptr);
  std::_Exit(1);
}

}  // namespace synthpert::trainer
