// The archive: from the bytes of a file to its records. PyTorch reads its zips with miniz; this reads the
// same structures the same way (the last end record, the central directory, each local header), checks
// every offset against the file before it reads, and allocates nothing a header only claims.
#include <algorithm>
#include <array>
#include <unordered_set>

#include <fmt/format.h>

#ifndef MP_HAVE_LIBDEFLATE
#define MP_HAVE_LIBDEFLATE 0
#endif
#if MP_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "common/lesson/print.h"
#include "common/weights/internal.h"
#include "common/weights/zip.h"

namespace common::weights {

uint32_t crc32(uint32_t crc, const void* data, size_t size) {
#if MP_HAVE_LIBDEFLATE
  return libdeflate_crc32(crc, data, size);
#else
  // The table-driven CRC-32 of zip (polynomial 0xEDB88320), about 0.5 GB/s: only for builds without
  // libdeflate (about 11 GB/s here).
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
#endif
}

uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t le64(const unsigned char* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }

namespace {

struct ZipEnd {
  uint64_t entries = 0;
  uint64_t cd_offset = 0;
  uint64_t cd_size = 0;
  uint64_t end_start = 0;  // where the end records begin: the central directory must end there
};

// The zip64 end record that a locator just before the end record points to, read as miniz reads it
// (mz_zip_reader_read_central_dir, the same in PyTorch 1.13's copy and 2.6's). miniz looks for the locator
// only when the end record starts at least 76 bytes into the file, and takes the zip64 record only when
// its signature is there; the suite refuses a locator without its record rather than fall back to the
// classic fields as miniz does. Each check is a row of docs/RELIABILITY.md's table.
void read_zip64(const Source& source, uint64_t end_at, ZipEnd& end, const Fail& fail) {
  if (end_at < zip::kZip64LocatorSize + zip::kZip64EndSize) return;
  unsigned char locator[zip::kZip64LocatorSize];
  source.read(end_at - zip::kZip64LocatorSize, locator, sizeof locator);
  if (le32(locator) != zip::kZip64LocatorSignature) return;
  const uint64_t z64 = le64(locator + 8);
  if (z64 > end_at - zip::kZip64LocatorSize || end_at - zip::kZip64LocatorSize - z64 < zip::kZip64EndSize)
    fail("not a valid model file: a damaged zip64 record");
  unsigned char rec[zip::kZip64EndSize];
  source.read(z64, rec, sizeof rec);
  if (le32(rec) != zip::kZip64EndSignature) fail("not a valid model file: a damaged zip64 record");
  // (zip64_size_of_end_of_central_dir_record < MZ_ZIP64_END_OF_CENTRAL_DIR_HEADER_SIZE - 12)
  if (le64(rec + 4) < zip::kZip64EndSize - 12) fail("not a valid model file: a damaged zip64 record");
  // (zip64_total_num_of_disks != 1U), then the disk numbers and counts of the zip64 record replace the
  // classic ones: (m_total_files != cdir_entries_on_this_disk) and ((num_this_disk | cdir_disk_index) != 0
  // && ...). This reader takes only disk 0.
  if (le32(locator + 16) != 1 || le32(rec + 16) != 0 || le32(rec + 20) != 0 ||
      le64(rec + 24) != le64(rec + 32))
    fail("not a valid model file: a multi-part zip archive (its zip64 record names other disks)");
  // (zip64_cdir_total_entries > MZ_UINT32_MAX), (zip64_size_of_central_directory > MZ_UINT32_MAX)
  if (le64(rec + 32) > UINT32_MAX || le64(rec + 40) > UINT32_MAX)
    fail("not a valid model file: a zip64 directory larger than PyTorch reads");
  end.entries = le64(rec + 32);
  end.cd_size = le64(rec + 40);
  end.cd_offset = le64(rec + 48);
  end.end_start = z64;
}

// miniz, PyTorch's zip reader, takes the last end-of-directory signature that has a whole record after
// it, whatever its comment length says. An earlier record whose comment covers a later one would be the
// one a stricter reader takes: two readings of one file. So the last one is taken, and it must end the
// file exactly, or the file is refused.
ZipEnd find_end(const Source& source, const Fail& fail) {
  const uint64_t size = source.size();
  const uint64_t tail_size = std::min<uint64_t>(size, 65535 + zip::kEndSize);
  std::vector<unsigned char> tail(tail_size);
  source.read(size - tail_size, tail.data(), tail.size());
  for (size_t i = tail.size() - zip::kEndSize + 1; i-- > 0;) {
    if (le32(&tail[i]) != zip::kEndSignature) continue;
    const unsigned char* e = &tail[i];
    if (i + zip::kEndSize + le16(e + 20) != tail.size()) {
      fail(
          "not a valid model file: its last end record does not end the file (two archives in one, or a "
          "damaged comment), so zip readers could read two different archives from it");
    }
    // (num_this_disk | cdir_disk_index) != 0, and (m_total_files != cdir_entries_on_this_disk).
    if (le16(e + 4) != 0 || le16(e + 6) != 0 || le16(e + 8) != le16(e + 10))
      fail("not a valid model file: a multi-part zip archive");
    ZipEnd end;
    end.entries = le16(e + 10);
    end.cd_size = le32(e + 12);
    end.cd_offset = le32(e + 16);
    end.end_start = size - tail_size + i;
    read_zip64(source, end.end_start, end, fail);
    return end;
  }
  fail("not a valid model file: the zip archive is damaged or truncated (no end record)");
  return {};
}

// Where an entry's data is and how long, as its directory entry gives them.
struct Extent {
  uint64_t csize;   // stored
  uint64_t usize;   // once inflated
  uint64_t offset;  // of its local header
};

// zip64: the sizes and offset that do not fit in 32 bits follow in extra field 0x0001, in this order.
// miniz walks the extra fields when a size or the offset says 0xFFFFFFFF, and refuses the file when a
// field runs past the extra data: so does this reader.
void apply_zip64(const unsigned char* extra, size_t elen, Extent& x, const std::string& shown,
                 const Fail& fail) {
  const bool needs_zip64 =
      x.csize == zip::kZip64Marker || x.usize == zip::kZip64Marker || x.offset == zip::kZip64Marker;
  for (size_t e = 0; e < elen;) {
    const unsigned char* field = extra + e;
    const size_t xlen = e + 4 <= elen ? le16(field + 2) : 0;
    if (e + 4 > elen || e + 4 + xlen > elen) {
      if (needs_zip64) fail(fmt::format("not a valid model file: entry {} has a damaged extra field", shown));
      break;
    }
    if (le16(field) == zip::kZip64ExtraId) {
      size_t q = 4;
      for (uint64_t* value : {&x.usize, &x.csize, &x.offset}) {
        if (*value != zip::kZip64Marker) continue;
        if (q + 8 > 4 + xlen)
          fail(fmt::format("not a valid model file: entry {} has a damaged zip64 field", shown));
        *value = le64(field + q);
        q += 8;
      }
    }
    e += 4 + xlen;
  }
}

// How the entry is stored, from its directory entry `h`: what miniz refuses when it reads the directory or
// the record.
void check_storage(const unsigned char* h, const Extent& x, const std::string& shown, const Fail& fail) {
  const uint16_t flags = le16(h + 8);
  // Encrypted (bit 0), strongly encrypted (bit 6), or with its local header masked (bit 13): miniz refuses
  // the last when it reads the directory and the others when it reads the record; and so it refuses
  // compressed patched data (bit 5).
  if ((flags & 0x2041) != 0) fail(fmt::format("not a model file: entry {} is encrypted", shown));
  if ((flags & 0x20) != 0) fail(fmt::format("not a model file: entry {} is compressed patched data", shown));
  // (decomp_size && !comp_size), on the sizes as given.
  if (x.usize != 0 && x.csize == 0)
    fail(fmt::format("not a valid model file: entry {} has damaged sizes", shown));
  // (disk_index == MZ_UINT16_MAX) || ((disk_index != num_this_disk) && (disk_index != 1)): this reader
  // takes disk 0 only.
  if (le16(h + 34) != 0) fail(fmt::format("not a valid model file: entry {} is on another disk", shown));
}

// The entry's name as PyTorch finds it: inside one folder, named in full. Returns where its '/' is.
size_t check_name(const std::string& entry, const std::string& prefix, const std::string& shown,
                  const Fail& fail) {
  const auto slash = entry.find('/');
  if (slash == std::string::npos || slash == 0)
    fail(fmt::format("not a model file: entry {} is outside the archive's folder", shown));
  // PyTorch takes the folder from the first name, then compares every name, as miniz gives it cut to 511
  // bytes, with the folder and its '/': a folder of 511 bytes or more never matches, and PyTorch refuses
  // the file ("not in a subdirectory").
  if (prefix.empty() && slash >= zip::kMaxFolderName - 1)
    fail(fmt::format(
        "not a model file: entry {} is in a folder whose name and '/' take more than the {} bytes of a name "
        "PyTorch reads",
        shown, zip::kMaxFolderName - 1));
  // miniz finds a name by strlen: a name with a NUL in it is found by its part before the NUL.
  if (entry.find('\0') != std::string::npos)
    fail(fmt::format("not a valid model file: entry {} has a NUL byte in its name", shown));
  return slash;
}

// Whether the entry is deflated: only TorchScript's code/ files may be, and nothing is a folder.
bool check_method(const unsigned char* h, const Extent& x, const std::string& entry, size_t slash,
                  const std::string& shown, const Fail& fail) {
  // Marked as a folder (MS-DOS attribute 0x10): miniz reads nothing from it, and PyTorch leaves the
  // tensor's memory as it was.
  if ((le32(h + 38) & 0x10) != 0)
    fail(fmt::format("not a valid model file: entry {} is marked as a folder", shown));
  const uint16_t method = le16(h + 10);
  const bool code = entry.compare(slash + 1, 5, "code/") == 0;
  const bool deflated = method == zip::kDeflated && code;
  if (!deflated && (method != zip::kStored || x.csize != x.usize)) {
    fail(fmt::format(
        "not a model file: entry {} is compressed (method {}); PyTorch and LibTorch never compress what they "
        "save, so this file was made by something else",
        shown, method));
  }
  return deflated;
}

// Where the entry's data starts: its local header must name the same entry, and its data lie before the
// directory.
uint64_t data_start(const Source& source, const ZipEnd& end, const Extent& x, const std::string& entry,
                    const std::string& shown, const Fail& fail) {
  unsigned char local[zip::kLocalHeaderSize];
  if (x.offset > end.cd_offset || end.cd_offset - x.offset < sizeof local)
    fail(fmt::format("not a valid model file: entry {} lies outside the archive", shown));
  source.read(x.offset, local, sizeof local);
  const size_t lnlen = le16(local + 26), lelen = le16(local + 28);
  if (le32(local) != zip::kLocalSignature || lnlen != entry.size())
    fail(fmt::format("not a valid model file: entry {} has a damaged header", shown));
  const uint64_t data = x.offset + sizeof local + lnlen + lelen;
  if (data > end.cd_offset || x.csize > end.cd_offset - data)
    fail(fmt::format("not a valid model file: entry {} runs past the end of its data", shown));
  std::string local_name(lnlen, '\0');
  source.read(x.offset + sizeof local, local_name.data(), lnlen);
  if (local_name != entry) fail(fmt::format("not a valid model file: entry {} has a damaged header", shown));
  return data;
}

// One central directory entry, read from the file (46 bytes, then its name, extra field and comment).
Record read_entry(const Source& source, uint64_t& at, const ZipEnd& end, std::string& prefix,
                  std::unordered_set<std::string>& names, Budget& budget, const Fail& fail) {
  unsigned char h[zip::kCentralHeaderSize];
  if (end.end_start - at < sizeof h) fail("not a valid model file: the zip archive's directory is damaged");
  source.read(at, h, sizeof h);
  if (le32(h) != zip::kCentralSignature)
    fail("not a valid model file: the zip archive's directory is damaged");
  Extent x{le32(h + 20), le32(h + 24), le32(h + 42)};
  const size_t nlen = le16(h + 28), elen = le16(h + 30), clen = le16(h + 32);
  if (end.end_start - at - sizeof h < nlen + elen + clen)
    fail("not a valid model file: the zip archive's directory is damaged");
  // A name is held three times while the file is read: in its record, in the set that finds a name met
  // twice, and in the index by name (weights.cpp); each copy with its string's and node's overhead.
  budget.charge(3 * (nlen + 64) + elen, "the archive's directory");
  std::vector<unsigned char> variable(nlen + elen);
  source.read(at + sizeof h, variable.data(), variable.size());
  at += sizeof h + nlen + elen + clen;
  std::string entry(reinterpret_cast<const char*>(variable.data()), nlen);
  const std::string shown = printable(entry);
  // PyTorch 1.13's miniz checks the local header's offset as the directory gives it, before any zip64
  // field: (offset + 30 + comp_size > archive_size) refuses the file there, where 2.6 reads on.
  if (x.csize != zip::kZip64Marker && x.offset + zip::kLocalHeaderSize + x.csize > source.size())
    fail(fmt::format("not a valid model file: entry {} lies outside the archive", shown));
  apply_zip64(variable.data() + nlen, elen, x, shown, fail);
  check_storage(h, x, shown, fail);
  const size_t slash = check_name(entry, prefix, shown, fail);
  const bool deflated = check_method(h, x, entry, slash, shown, fail);
  if (prefix.empty()) prefix = entry.substr(0, slash + 1);
  if (entry.compare(0, prefix.size(), prefix) != 0)
    fail(fmt::format("not a model file: entry {} is outside folder {}", shown, printable(prefix)));
  // miniz finds names whatever their ASCII case: "data/0" and "DATA/0" are one name to PyTorch.
  if (!names.insert(folded(entry)).second)
    fail(fmt::format(
        "not a valid model file: entry {} appears twice (letter case aside, as PyTorch finds names)", shown));
  const uint64_t data = data_start(source, end, x, entry, shown, fail);
  return {entry.substr(prefix.size()), data, x.usize, le32(h + 16), deflated, x.csize};
}

// Raw deflate of `packed` into `out`, which has the exact expected size.
bool inflate_exactly(const std::string& packed, std::string& out) {
#if MP_HAVE_LIBDEFLATE
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  if (d == nullptr) return false;
  size_t produced = 0;
  const auto rc =
      libdeflate_deflate_decompress(d, packed.data(), packed.size(), out.data(), out.size(), &produced);
  libdeflate_free_decompressor(d);
  return rc == LIBDEFLATE_SUCCESS && produced == out.size();
#else
  (void)packed;
  (void)out;
  return false;  // built without libdeflate: compressed TorchScript code cannot be checked, so it is refused
#endif
}

}  // namespace

std::string folded(std::string name) {
  for (auto& c : name)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return name;
}

std::vector<Record> read_directory(const Source& source, Budget& budget, const Fail& fail) {
  const uint64_t size = source.size();
  if (size == 0) fail("the file is empty");
  if (size < zip::kEndSize)
    fail("not a model file: too short to be the zip archive that PyTorch and LibTorch write");
  unsigned char head[4] = {};
  source.read(0, head, 4);
  if (le32(head) != zip::kLocalSignature) {
    fail(
        "not a model file: PyTorch and LibTorch files are zip archives, and this one does not start like "
        "one");
  }
  const ZipEnd end = find_end(source, fail);
  if (end.entries == 0 || end.entries > kMaxEntries)
    fail(fmt::format("not a valid model file: {} archive entries", end.entries));
  // Every size below is checked against the file before it is used; an entry takes at least its fixed
  // header.
  if (end.cd_offset > end.end_start || end.cd_size != end.end_start - end.cd_offset ||
      end.cd_size / zip::kCentralHeaderSize < end.entries)
    fail("not a valid model file: the zip archive's directory is damaged");
  std::vector<Record> records;
  std::string prefix;
  std::unordered_set<std::string> names;
  uint64_t at = end.cd_offset;
  for (uint64_t n = 0; n < end.entries; ++n) {
    budget.charge(sizeof(Record), "the archive's directory");
    records.push_back(read_entry(source, at, end, prefix, names, budget, fail));
  }
  return records;
}

std::string read_record(const Source& source, const Record& r, Budget& budget, const Fail& fail) {
  budget.charge(r.size, "a record read whole");
  std::string bytes(static_cast<size_t>(r.size), '\0');
  if (r.deflated) {
    // Inflated into exactly the size the directory declares (bounded by the caller): a stream that would
    // inflate to more is an error, not a bigger buffer.
    budget.charge(r.stored_size, "a record read whole");
    std::string packed(static_cast<size_t>(r.stored_size), '\0');
    source.read(r.offset, packed.data(), packed.size());
    if (!inflate_exactly(packed, bytes))
      fail(fmt::format("not a valid model file: entry {} does not inflate to its declared size",
                       printable(r.name)));
  } else {
    source.read(r.offset, bytes.data(), bytes.size());
  }
  check_crc(r, crc32(0, bytes.data(), bytes.size()), fail);
  return bytes;
}

void check_crc(const Record& r, uint32_t crc, const Fail& fail) {
  if (crc != r.crc)
    fail(fmt::format("not a valid model file: entry {} is damaged (CRC error)", printable(r.name)));
}

}  // namespace common::weights
