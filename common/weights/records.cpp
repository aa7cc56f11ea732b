// Reading many byte ranges of a file at once: the loaders' one path from a file's bytes to memory. The
// ranges are cut into slices that the machine's cores read in parallel (and sum, for a CRC): on two cores
// a CRC check and a load into a module each take about half the time of one core, and nothing else
// changes: every range is read exactly once per pass, with pread, and a range's CRC is the CRC of its
// bytes in order (slices combined as zip's CRC-32 combines).
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "common/weights/internal.h"

namespace common::weights {
namespace {

constexpr uint64_t kSlice = 4ull << 20;       // a unit of work
constexpr uint64_t kPerThread = 32ull << 20;  // less than this a thread: fewer threads
constexpr unsigned kMaxThreads = 8;
constexpr uint64_t kScratch = 256ull << 10;  // a piece read only to be summed

// Polynomial arithmetic modulo zip's CRC-32 polynomial, bit-reflected (x^0 is the top bit), as zlib's
// crc32_combine does it: the CRC of A then B is CRC(A) times x^(8 |B|), plus CRC(B).
uint32_t times(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if ((a & m) != 0) product ^= b;
    b = (b & 1) != 0 ? (b >> 1) ^ 0xEDB88320u : b >> 1;
  }
  return product;
}

// x^(8 n) modulo the polynomial, by squaring.
uint32_t x_to_8n(uint64_t n) {
  uint32_t result = 1u << 31;  // 1
  uint32_t power = 1u << 23;   // x^8
  for (; n != 0; n >>= 1) {
    if ((n & 1) != 0) result = times(power, result);
    power = times(power, power);
  }
  return result;
}

}  // namespace

uint32_t crc32_combine(uint32_t first, uint32_t second, uint64_t second_size) {
  return times(x_to_8n(second_size), first) ^ second;
}

std::vector<uint32_t> read_ranges(const Source& source, const std::vector<Range>& ranges, bool crc) {
  struct Slice {
    size_t range;
    uint64_t at;  // within the range
    uint64_t size;
    uint32_t crc = 0;
  };
  std::vector<Slice> slices;
  uint64_t total = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    for (uint64_t at = 0; at < ranges[i].size; at += kSlice)
      slices.push_back({i, at, std::min(kSlice, ranges[i].size - at)});
    total += ranges[i].size;
  }
  const unsigned threads = static_cast<unsigned>(std::clamp<uint64_t>(
      std::min<uint64_t>(total / kPerThread, std::max(1u, std::thread::hardware_concurrency())), 1,
      kMaxThreads));
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_lock;
  const auto work = [&] {
    std::vector<char> buffer;
    try {
      for (size_t k = next++; k < slices.size(); k = next++) {
        auto& s = slices[k];
        const auto& r = ranges[s.range];
        if (r.into != nullptr) {
          source.read(r.offset + s.at, r.into + s.at, s.size);
          if (crc) s.crc = crc32(0, r.into + s.at, s.size);
          continue;
        }
        // Only to be summed: read in pieces small enough to stay in the core's cache while they are.
        buffer.resize(kScratch);
        for (uint64_t done = 0; done < s.size; done += kScratch) {
          const auto n = std::min(kScratch, s.size - done);
          source.read(r.offset + s.at + done, buffer.data(), n);
          if (crc) s.crc = crc32(s.crc, buffer.data(), n);
        }
      }
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_lock);
      if (!error) error = std::current_exception();
      next = slices.size();
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  std::vector<uint32_t> crcs(ranges.size(), 0);
  if (crc)
    for (const auto& s : slices)
      crcs[s.range] = s.at == 0 ? s.crc : crc32_combine(crcs[s.range], s.crc, s.size);
  return crcs;
}

}  // namespace common::weights
