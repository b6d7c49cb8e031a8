// keep_large_allocations_on_heap: glibc maps a freshly requested 8 MiB block
// on its own (its starting threshold is 128 KiB) and, after it is freed,
// maps only blocks above 8 MiB; once the setting is made a 30 MiB block
// comes from the heap.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>

#include "common/host_allocator.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

TEST_CASE("large blocks stay on the heap", "[common]") {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  auto mapped_blocks = [] { return mallinfo2().hblks; };
  const size_t before = mapped_blocks();
  void* p = std::malloc(size_t(8) << 20);
  REQUIRE(p != nullptr);
  CHECK(mapped_blocks() == before + 1);  // glibc's default: a mapping of its own
  std::free(p);

  REQUIRE(synthpert::keep_large_allocations_on_heap());
  const size_t after_setting = mapped_blocks();
  p = std::malloc(size_t(30) << 20);
  REQUIRE(p != nullptr);
  std::memset(p, 1, size_t(30) << 20);
  CHECK(mapped_blocks() == after_setting);
  std::free(p);
#else
  WARN("skipped: needs glibc >= 2.33 (mallinfo2)");
#endif
}
