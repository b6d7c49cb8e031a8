// Ctrl-C for long batch commands (traces, eval): the first SIGINT or SIGTERM
// asks the work to wrap up (start nothing new, finish and write what is in
// flight, whose tokens are paid for or whose forward is half done); a second
// one ends the process at once.
#pragma once

#include <atomic>

namespace synthpert::cli {

// Installs the handlers and returns the flag the first signal sets. `notice`
// (a string literal) is written to stderr when that happens.
const std::atomic<bool>& install_graceful_interrupt(const char* notice);

}  // namespace synthpert::cli
