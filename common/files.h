#pragma once
// Files that are never half-written: every write goes to a temporary file beside the target, is flushed
// and synced, and only then renamed over the target. A crash or an error mid-write leaves the old file.
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace common {

// Calls write_to(temporary_path), syncs that file, renames it to path and syncs the folder. If write_to
// throws, the temporary file is removed and path is left as it was.
void atomic_write(const std::filesystem::path& path,
                  const std::function<void(const std::filesystem::path& tmp)>& write_to);

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// The whole file; throws naming the path when it is missing or unreadable.
std::vector<char> read_file_bytes(const std::filesystem::path& path);

// Creates the folder if needed and checks that a file can be created in it; throws naming it otherwise.
void ensure_writable_dir(const std::filesystem::path& dir);

}  // namespace common
