// How the process's host allocations are served.
//
// glibc gives every block above its mmap threshold (128 KiB at start; raised
// only after such a block is freed, and never past 32 MiB) its own mmap, and
// each fresh mapping page-faults on first touch. A CPU forward's activations
// are blocks like that, freed and allocated again in every layer, so a
// process that keeps to small tensors pays the faults on every forward.
// Keeping blocks up to 32 MiB (glibc's largest threshold) on the heap made
// CPU prefill about 1.8x faster (bench_engine, small preset, batch 8 x 128
// tokens; docs/architecture.md).
#pragma once

namespace synthpert {

// Called once at process start by the CLI and the engine benchmarks. Freed
// heap memory is kept for reuse up to 512 MiB before it is returned to the
// system. Returns whether glibc took both settings (false elsewhere).
bool keep_large_allocations_on_heap();

}  // namespace synthpert
