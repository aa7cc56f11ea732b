// The suite's allocator settings, applied before main in every lesson, test and benchmark (CMake links this
// object into each of them). glibc serves blocks of 128 KiB and more (a threshold that adapts up to 32 MiB)
// straight from mmap and returns them to the kernel on free, and trims the heap's top once 128 KiB are free
// there. A model whose activations are megabytes then gives its memory back on every call and faults it in
// again, page by page: at batch 512 and hidden width 4096 that made the notes' MLP 4.7 times slower than the
// same arithmetic into preallocated outputs (docs/PERFORMANCE.md, table 2). With these settings freed
// blocks up to 32 MiB stay in the heap for the next call. The peak is the same; what is not returned is
// what the next call takes again. MP_MALLOC=glibc in the environment leaves glibc as it is.
//
// The same settings as glibc's environment variables, for a Python process (scripts/bench-allocators):
// MP_MALLOC_ENVIRONMENT {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace {

[[gnu::constructor]] void apply_malloc_policy() {
  const char* choice = std::getenv("MP_MALLOC");
  if (choice != nullptr && std::strcmp(choice, "glibc") == 0) return;
  // Blocks up to 32 MiB from the heap, which keeps what is freed for the next call. glibc allows no higher
  // threshold. Taking every block from the heap (M_MMAP_MAX 0) also covered the 64 MiB activations of
  // batch 4096 at width 4096, but in that run the heap grew 64 MiB at a time, ten times (strace of brk),
  // to 2.6 times glibc's peak memory (docs/PERFORMANCE.md).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  // Give the heap's top back to the kernel only when a whole GiB is free there.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace
