#include "common/host_allocator.h"

#include <cstdlib>  // defines __GLIBC__ where the C library is glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace synthpert {

bool keep_large_allocations_on_heap() {
#if defined(__GLIBC__)
  // 32 MiB is the largest threshold glibc accepts on 64-bit systems; a fixed
  // one also turns off its own adjustment.
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1;
  return mmap_set && trim_set;
#else
  return false;
#endif
}

}  // namespace synthpert
