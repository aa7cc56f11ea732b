#pragma once
// Files that are never half-written. Every file the suite writes goes through write_atomically: a
// temporary file beside the target, every write checked, fsync, close checked, rename over the target,
// fsync of the folder. On any failure (a full disk, an I/O error) the temporary file is removed, the old
// file is left exactly as it was, and the error names the file and the reason. SQLite and PostgreSQL
// are the models.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace common {

// Calls write_to(fd) on a new temporary file beside path, then makes it path as above. write_to writes
// with write_all (or anything that throws on failure).
void write_atomically(const std::filesystem::path& path, const std::function<void(int fd)>& write_to);

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Writes all of data to fd, retrying short writes; throws std::runtime_error with strerror otherwise.
void write_all(int fd, const void* data, size_t size);

// The temporary files write_atomically leaves when a process is killed mid-write (".NAME.tmp-XXXXXXXX",
// eight lowercase hex digits) in dir, for the NAMEs `ours` accepts, removed; returns how many. A later run
// in the same folder calls it. Only regular files of exactly that shape for the suite's own names: the
// folder may hold a learner's files, and they are not the suite's to remove.
int remove_stale_temporaries(const std::filesystem::path& dir,
                             const std::function<bool(const std::string& name)>& ours);

// Removes dir and every folder under it that holds no file, leaving anything that holds one.
void remove_empty_folders(const std::filesystem::path& dir);

// Creates the folder if needed and checks that a file can be created in it; throws naming it otherwise.
void ensure_writable_dir(const std::filesystem::path& dir);

}  // namespace common
