#pragma once
// The zip format as PyTorch writes and reads it (miniz's layout), shared by the reader and the writer so
// that each signature and fixed size is written down once. Only stored and deflated entries in one part
// are ever read or written; PKWARE's APPNOTE.TXT defines every structure named here.
#include <cstddef>
#include <cstdint>

namespace common::weights::zip {

// The signatures that start each structure.
inline constexpr uint32_t kLocalSignature = 0x04034b50;
inline constexpr uint32_t kCentralSignature = 0x02014b50;
inline constexpr uint32_t kEndSignature = 0x06054b50;
inline constexpr uint32_t kZip64EndSignature = 0x06064b50;
inline constexpr uint32_t kZip64LocatorSignature = 0x07064b50;

// The fixed part of each structure, before its variable-length fields.
inline constexpr size_t kLocalHeaderSize = 30;
inline constexpr size_t kCentralHeaderSize = 46;
inline constexpr size_t kEndSize = 22;
inline constexpr size_t kZip64LocatorSize = 20;
inline constexpr size_t kZip64EndSize = 56;

// A 32-bit size or offset that says "the real value is in the zip64 extra field".
inline constexpr uint32_t kZip64Marker = 0xFFFFFFFFu;
inline constexpr uint16_t kZip64ExtraId = 0x0001;

inline constexpr uint16_t kStored = 0;
inline constexpr uint16_t kDeflated = 8;

// miniz's MZ_ZIP_MAX_ARCHIVE_FILENAME_SIZE: it gives PyTorch at most 511 bytes of an entry's name.
inline constexpr size_t kMaxFolderName = 512;

}  // namespace common::weights::zip
