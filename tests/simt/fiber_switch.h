// Stack switching for the emulation's fibers. On x86-64 a hand-written
// switch saves the callee-saved registers and the SSE/x87 control words:
// swapcontext also saves the signal mask, a system call per switch, which
// made it the emulation's largest cost. Elsewhere, ucontext.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__)

namespace synthpert::simt {

struct FiberContext {
  void* sp = nullptr;
};

extern "C" void synthpert_simt_switch(void** save_sp, void* load_sp);

// Lays out a stack whose first switch "returns" into entry, which must
// never return (it switches away for good at its end).
inline void fiber_prepare(FiberContext& c, void* stack, size_t bytes, void (*entry)()) {
  auto top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t(15);
  auto* words = reinterpret_cast<uint64_t*>(top);
  words[-1] = 0;                                     // fake return address of entry: ends backtraces
  words[-2] = reinterpret_cast<uint64_t>(entry);     // popped by ret; entry starts with sp = 8 mod 16
  for (int r = 3; r <= 8; ++r) words[-r] = 0;        // rbp rbx r12 r13 r14 r15
  words[-9] = 0x1F80u | (uint64_t(0x037Fu) << 32);   // default MXCSR, x87 control word
  c.sp = &words[-9];
}

inline void fiber_switch(FiberContext& from, FiberContext& to) { synthpert_simt_switch(&from.sp, to.sp); }

}  // namespace synthpert::simt

#else

#include <ucontext.h>

namespace synthpert::simt {

struct FiberContext {
  ucontext_t uc;
};

inline void fiber_prepare(FiberContext& c, void* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}

inline void fiber_switch(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

}  // namespace synthpert::simt

#endif
