// The suite's allocator policy, applied before main in every lesson, test and benchmark (CMake links this
// object into each of them), and in a Python process that loads build/lib/libmodelos_malloc.so after
// `import torch`. It is measured in docs/PERFORMANCE.md, table 2. MP_MALLOC=glibc in the environment leaves
// glibc and LibTorch as they are.
//
// glibc serves blocks of 128 KiB and more (a threshold that adapts up to 32 MiB) straight from mmap and
// returns them to the kernel on free, and trims the heap's top once 128 KiB are free there. A model whose
// activations are megabytes then gives its memory back on every call and faults it in again, page by page:
// at batch 512 and hidden width 4096 that made the notes' MLP 2.5 times slower than the same operations
// into preallocated outputs. Two parts:
// - mallopt: freed blocks up to 32 MiB stay in glibc's heap for the next call.
// - LibTorch's CPU allocator gets a front that keeps freed tensor blocks of 1 MiB and more, by size, for the
//   next tensor of that size. Above 32 MiB glibc always maps and unmaps (it refuses a higher threshold), and
//   taking such blocks from its heap instead fragmented it: at batch 4096 and width 4096 the heap grew to
//   2.6 times glibc's peak. Between 1 and 32 MiB the front also keeps the heap from growing: at batch 4096
//   and width 256 glibc's heap alone peaked 14% above glibc as it is, the front 19% below it.
//   A request that finds no block of its size first gives back kept blocks of at least its own size, so what
//   is kept and what is live together stay within the most that was ever live at once (give or take the
//   rounding to 2 MiB), and no more than 1 GiB is kept.

#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>

#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <unordered_map>

namespace {

constexpr size_t kLarge = size_t{1} << 20;
constexpr size_t kStep = size_t{2} << 20;  // sizes are rounded up to this, so near sizes share blocks
constexpr size_t kCacheLimit = size_t{1} << 30;
constexpr size_t kHeader = 64;  // LibTorch's CPU alignment; the data starts this far into the mapping

class LargeBlockCache final : public c10::Allocator {
 public:
  explicit LargeBlockCache(c10::Allocator* fallback) : fallback_(fallback) {}

// LibTorch 2.3 made allocate non-const and added copy_data.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(size_t nbytes) override { return take(nbytes); }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#else
  c10::DataPtr allocate(size_t nbytes) const override {
    return const_cast<LargeBlockCache*>(this)->take(nbytes);
  }
#endif
  c10::DeleterFnPtr raw_deleter() const override { return &LargeBlockCache::raw_delete; }

  static LargeBlockCache* instance;

  // For fork: the child starts with the mutex free and the same blocks.
  void lock() { mutex_.lock(); }
  void unlock() { mutex_.unlock(); }

 private:
  c10::DataPtr take(size_t nbytes) {
    // No mapping could hold more than half the address space; such a request goes on to fail in LibTorch's
    // own allocator, with its own message, before the rounding below could wrap around.
    if (nbytes < kLarge || nbytes > std::numeric_limits<size_t>::max() / 2)
      return fallback_->allocate(nbytes);
    const size_t mapped = (nbytes + kHeader + kStep - 1) / kStep * kStep;
    void* base = nullptr;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->size == mapped) {
          base = it->base;
          cached_ -= mapped;
          free_.erase(it);
          break;
        }
      }
      if (base == nullptr) evict(mapped);
    }
    if (base == nullptr) {
      base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      // The default allocator then fails with LibTorch's own out-of-memory error.
      if (base == MAP_FAILED) return fallback_->allocate(nbytes);
    }
    void* data = static_cast<char*>(base) + kHeader;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      live_[data] = mapped;
    }
    return {data, data, &LargeBlockCache::release, c10::Device(c10::DeviceType::CPU)};
  }

  // Gives back cached blocks, oldest first, until `wanted` bytes are given back or none is left. The caller
  // holds the mutex.
  void evict(size_t wanted) {
    size_t given = 0;
    while (!free_.empty() && given < wanted) {
      munmap(free_.front().base, free_.front().size);
      given += free_.front().size;
      cached_ -= free_.front().size;
      free_.pop_front();
    }
  }

  // Returns whether data was one of this cache's blocks.
  bool put_back(void* data) {
    std::lock_guard<std::mutex> guard(mutex_);
    const auto it = live_.find(data);
    if (it == live_.end()) return false;
    const size_t mapped = it->second;
    live_.erase(it);
    free_.push_back({static_cast<char*>(data) - kHeader, mapped});
    cached_ += mapped;
    if (cached_ > kCacheLimit) evict(cached_ - kCacheLimit);
    return true;
  }

  static void release(void* data) { instance->put_back(data); }

  // raw_allocate's blocks come from either side; raw_deallocate hands each back to the one it came from.
  static void raw_delete(void* data) {
    if (!instance->put_back(data)) instance->fallback_->raw_deleter()(data);
  }

  struct Block {
    void* base;
    size_t size;
  };
  c10::Allocator* fallback_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;
  std::deque<Block> free_;
  size_t cached_ = 0;
};

LargeBlockCache* LargeBlockCache::instance = nullptr;

// AddressSanitizer replaces malloc to find use after free; blocks kept here would hide it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

[[gnu::constructor]] void apply_malloc_policy() {
  const char* choice = std::getenv("MP_MALLOC");
  if (choice != nullptr && std::strcmp(choice, "glibc") == 0) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  // Give the heap's top back to the kernel only when a whole GiB is free there.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Once per process, also where a program and a library loaded into it both carry this object.
  if (kSanitized || c10::GetCPUAllocator() != c10::GetDefaultCPUAllocator()) return;
  // Never destroyed: tensors freed during exit still come back to it.
  LargeBlockCache::instance = new LargeBlockCache(c10::GetDefaultCPUAllocator());
  pthread_atfork([] { LargeBlockCache::instance->lock(); }, [] { LargeBlockCache::instance->unlock(); },
                 [] { LargeBlockCache::instance->unlock(); });
  c10::SetCPUAllocator(LargeBlockCache::instance);
}

}  // namespace
