#include "apps/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace synthpert::cli {
namespace {

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");
const char* g_notice = "";

void on_interrupt(int sig) {
  if (g_interrupted.exchange(true)) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  // write(2) is async-signal-safe; stdio is not.
  [[maybe_unused]] const ssize_t n = write(STDERR_FILENO, g_notice, std::strlen(g_notice));
}

}  // namespace

const std::atomic<bool>& install_graceful_interrupt(const char* notice) {
  g_notice = notice;
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESTART;  // a request or write in flight carries on, not fails with EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return g_interrupted;
}

}  // namespace synthpert::cli
