// The zip writer: stored records, each aligned to 64 bytes as PyTorch aligns them, so that what is written
// is what Python's torch.save writes.
#include <cstdint>
#include <stdexcept>

#include "common/weights/internal.h"
#include "common/weights/zip.h"

namespace common::weights {
namespace {

class ZipWriter {
 public:
  using Sink = ZipSink;
  ZipWriter(Sink sink, std::string prefix) : sink_(std::move(sink)), prefix_(std::move(prefix)) {}

  void add(const std::string& name, const void* data, size_t size) {
    const std::string full = prefix_ + "/" + name;
    const uint32_t crc = weights::crc32(0, data, size);
    // Data starts on a 64-byte boundary, as PyTorch aligns it, padded with an extra field ("FB").
    const uint64_t header_end = offset_ + zip::kLocalHeaderSize + full.size() + 4;
    const uint64_t pad = (64 - header_end % 64) % 64;
    if (header_end + pad + size > UINT32_MAX)
      throw std::runtime_error("this writer stores files up to 4 GiB; the model is larger");
    std::string h;
    put32(h, zip::kLocalSignature);
    put16(h, 20);  // version needed: 2.0
    put16(h, 0);   // flags
    put16(h, zip::kStored);
    put16(h, 0);     // time
    put16(h, 0x21);  // date: 1980-01-01
    put32(h, crc);
    put32(h, static_cast<uint32_t>(size));
    put32(h, static_cast<uint32_t>(size));
    put16(h, static_cast<uint16_t>(full.size()));
    put16(h, static_cast<uint16_t>(4 + pad));
    h += full;
    put16(h, 0x4246);
    put16(h, static_cast<uint16_t>(pad));
    h.append(pad, 'Z');
    entries_.push_back({full, crc, size, offset_});
    write(h.data(), h.size());
    write(data, size);
  }

  void finish() {
    const uint64_t cd_start = offset_;
    std::string cd;
    for (const auto& e : entries_) {
      put32(cd, zip::kCentralSignature);
      put16(cd, 0x031e);  // made by: Unix, 3.0
      put16(cd, 20);
      put16(cd, 0);
      put16(cd, zip::kStored);
      put16(cd, 0);
      put16(cd, 0x21);
      put32(cd, e.crc);
      put32(cd, static_cast<uint32_t>(e.size));
      put32(cd, static_cast<uint32_t>(e.size));
      put16(cd, static_cast<uint16_t>(e.name.size()));
      put16(cd, 0);
      put16(cd, 0);
      put16(cd, 0);
      put16(cd, 0);
      put32(cd, 0);
      put32(cd, static_cast<uint32_t>(e.offset));
      cd += e.name;
    }
    const auto cd_size = static_cast<uint32_t>(cd.size());
    put32(cd, zip::kEndSignature);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, static_cast<uint16_t>(entries_.size()));
    put16(cd, static_cast<uint16_t>(entries_.size()));
    put32(cd, cd_size);
    put32(cd, static_cast<uint32_t>(cd_start));
    put16(cd, 0);
    write(cd.data(), cd.size());
  }

 private:
  struct Entry {
    std::string name;
    uint32_t crc;
    uint64_t size;
    uint64_t offset;
  };
  static void put16(std::string& s, uint16_t v) {
    s.push_back(static_cast<char>(v & 0xFF));
    s.push_back(static_cast<char>(v >> 8));
  }
  static void put32(std::string& s, uint32_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  void write(const void* data, size_t size) {
    sink_(data, size);
    offset_ += size;
  }

  Sink sink_;
  std::string prefix_;
  uint64_t offset_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace

void write_zip(const std::string& archive_name, const std::vector<ZipPart>& parts, const ZipSink& sink) {
  ZipWriter zip(sink, archive_name);
  for (const auto& part : parts) zip.add(part.name, part.data, part.size);
  zip.finish();
}

std::string make_archive(const std::string& archive_name,
                         const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out;
  std::vector<ZipPart> parts;
  parts.reserve(records.size());
  for (const auto& [name, bytes] : records) parts.push_back({name, bytes.data(), bytes.size()});
  write_zip(archive_name, parts,
            [&out](const void* data, size_t size) { out.append(static_cast<const char*>(data), size); });
  return out;
}

}  // namespace common::weights
