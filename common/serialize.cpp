#include "common/serialize.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <torch/script.h>

#ifndef MP_HAVE_LIBZIP
#define MP_HAVE_LIBZIP 0
#endif
#if MP_HAVE_LIBZIP
#include <caffe2/serialize/inline_container.h>
#include <libdeflate.h>
#include <zip.h>

#include <cstring>
#endif

#include "common/files.h"
#include "common/lesson.h"
#include "common/print.h"

namespace common {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", name, what));
}

#if MP_HAVE_LIBZIP
struct ZipArchive {
  zip_t* archive = nullptr;
  ~ZipArchive() {
    if (archive != nullptr) zip_discard(archive);
  }
};

// LibTorch's reader over the bytes in memory, used only for where each entry's data starts (libzip
// does not tell), and only after libzip found the archive consistent: malformed headers can crash it.
class BufferReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BufferReader(std::string_view bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  std::string_view bytes_;
};

// Where a stored entry's data starts in bytes, by LibTorch's reading of its local header.
size_t stored_data_offset(caffe2::serialize::PyTorchStreamReader& reader, const std::string& entry,
                          const std::string& name) {
  // LibTorch names records without the archive's top folder ("archive/data/0" is "data/0").
  const auto slash = entry.find('/');
  if (slash == std::string::npos)
    fail(name, fmt::format("not a model file: entry {} is outside its folder", entry));
  try {
    return reader.getRecordOffset(entry.substr(slash + 1));
  } catch (const c10::Error& e) {
    fail(name, fmt::format("not a model file: entry {} cannot be located ({})", entry, one_line_message(e)));
  }
}

std::vector<std::string> validate_with_libzip(std::string_view bytes, const std::string& name,
                                              std::string* data_pkl) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  if (source == nullptr)
    fail(name, fmt::format("cannot read it as an archive ({})", zip_error_strerror(&error)));
  ZipArchive zip;
  zip.archive = zip_open_from_source(source, ZIP_CHECKCONS | ZIP_RDONLY, &error);
  if (zip.archive == nullptr) {
    zip_source_free(source);
    const std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    fail(name, fmt::format("not a valid model file: the archive is damaged or truncated ({})", why));
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::vector<std::string> names;
  const zip_int64_t count = zip_get_num_entries(zip.archive, 0);
  std::vector<char> buffer(1 << 16);
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(zip.archive, static_cast<zip_uint64_t>(i), 0, &stat) != 0 || stat.name == nullptr) {
      fail(name, "not a valid model file: an archive entry has no name");
    }
    const std::string& entry = names.emplace_back(stat.name);
    const bool is_data_pkl =
        data_pkl != nullptr && entry.size() >= 8 && entry.compare(entry.size() - 8, 8, "data.pkl") == 0;
    const zip_uint64_t needed = ZIP_STAT_SIZE | ZIP_STAT_CRC | ZIP_STAT_COMP_METHOD;
    if (!is_data_pkl && (stat.valid & needed) == needed && stat.comp_method == ZIP_CM_STORE) {
      // LibTorch and PyTorch store tensors uncompressed: their CRC is checked in place, without the copy
      // that reading through libzip makes (400 MB: 34 ms against 135 ms).
      if (!reader) {
        try {
          reader =
              std::make_unique<caffe2::serialize::PyTorchStreamReader>(std::make_shared<BufferReader>(bytes));
        } catch (const c10::Error& e) {
          fail(name, fmt::format("not a model file: {}", one_line_message(e)));
        }
      }
      const size_t offset = stored_data_offset(*reader, entry, name);
      if (offset > bytes.size() || stat.size > bytes.size() - offset) {
        fail(name, fmt::format("not a valid model file: entry {} runs past the end of the file", entry));
      }
      if (libdeflate_crc32(0, bytes.data() + offset, stat.size) != stat.crc) {
        fail(name, fmt::format("not a valid model file: entry {} is damaged (CRC error)", entry));
      }
      continue;
    }
    zip_file_t* file = zip_fopen_index(zip.archive, static_cast<zip_uint64_t>(i), 0);
    if (file == nullptr) {
      fail(name, fmt::format("not a valid model file: entry {} cannot be opened ({})", entry,
                             zip_strerror(zip.archive)));
    }
    zip_int64_t n = 0;
    // Reading every byte is what makes libzip check the entry's CRC.
    while ((n = zip_fread(file, buffer.data(), buffer.size())) > 0) {
      if (is_data_pkl) data_pkl->append(buffer.data(), static_cast<size_t>(n));
    }
    const std::string why = n < 0 ? zip_file_strerror(file) : "";
    zip_fclose(file);
    if (n < 0) fail(name, fmt::format("not a valid model file: entry {} is damaged ({})", entry, why));
  }
  return names;
}
#endif

bool is_libtorch_archive(const std::vector<std::string>& entries) {
  // torch::save writes a TorchScript module: it has constants.pkl (and code/); a pickled value has not.
  return std::any_of(entries.begin(), entries.end(), [](const std::string& e) {
    return e.size() >= 13 && e.compare(e.size() - 13, 13, "constants.pkl") == 0;
  });
}

void flatten_archive(torch::serialize::InputArchive& archive, const std::string& prefix, StateDict& out) {
  for (const auto& key : archive.keys()) {
    torch::Tensor tensor;
    if (archive.try_read(key, tensor)) {
      out.emplace_back(prefix + key, tensor);
      continue;
    }
    torch::serialize::InputArchive child;
    if (archive.try_read(key, child)) flatten_archive(child, prefix + key + ".", out);
  }
}

// The advice for Python files that LibTorch's unpickler cannot read.
constexpr const char* kPythonAdvice =
    "save a plain dict of tensors from Python instead: torch.save(dict(model.state_dict()), path)";

StateDict state_dict_from_ivalue(const c10::IValue& value, const std::string& name) {
  if (!value.isGenericDict()) {
    fail(name, fmt::format("holds a {}, not a dict of name -> tensor; {}", value.tagKind(), kPythonAdvice));
  }
  StateDict state;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString()) fail(name, "has a dict key that is not a string");
    const auto key = item.key().toStringRef();
    if (!item.value().isTensor()) {
      fail(name, fmt::format("entry '{}' is a {}, not a tensor", key, item.value().tagKind()));
    }
    state.emplace_back(key, item.value().toTensor());
  }
  return state;
}

c10::IValue unpickle(std::string_view bytes, const std::string& name, const std::string& data_pkl) {
  // A pickled OrderedDict opens with PROTO 2 then GLOBAL 'collections OrderedDict'; LibTorch's unpickler
  // turns that global into None (it expects one only inside a tensor's rebuild call), so catch it first.
  static const std::string kOrderedDictStart = std::string("\x80\x02", 2) + "ccollections\nOrderedDict\n";
  if (data_pkl.compare(0, kOrderedDictStart.size(), kOrderedDictStart) == 0) {
    fail(name, fmt::format("holds a Python OrderedDict (what model.state_dict() returns), which LibTorch "
                           "cannot read; {}",
                           kPythonAdvice));
  }
  try {
    return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (what.find("Unknown opcode") != std::string::npos && what.find("0x73") != std::string::npos) {
      // 0x73 is pickle's SETITEM, which Python uses for a dict of exactly one entry.
      fail(name,
           "holds a Python dict with a single entry, which LibTorch 1.13's unpickler cannot read "
           "(pickle opcode SETITEM); save at least two entries, or the tensor itself with torch.save(tensor, "
           "path)");
    }
    fail(name, fmt::format("cannot be read as a Python torch.save file: {}", one_line_message(e)));
  }
}

// The archive's entry names after the checks; data_pkl, when given, receives the pickle's bytes.
std::vector<std::string> checked_entries(std::string_view bytes, const std::string& name,
                                         std::string* data_pkl) {
  if (bytes.empty()) fail(name, "the file is empty");
  if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K') {
    fail(name,
         "not a model file: LibTorch and PyTorch files are zip archives, and this one does not start like "
         "one");
  }
#if MP_HAVE_LIBZIP
  return validate_with_libzip(bytes, name, data_pkl);
#else
  (void)data_pkl;  // without libzip the pickle is not extracted: OrderedDict files get LibTorch's error
  return {};
#endif
}

}  // namespace

std::vector<std::string> validate_archive(std::string_view bytes, const std::string& name) {
  return checked_entries(bytes, name, nullptr);
}

StateDict state_dict_from_archive(torch::serialize::InputArchive& archive) {
  StateDict state;
  flatten_archive(archive, "", state);
  return state;
}

void load_checked_archive(torch::serialize::InputArchive& archive, const fs::path& path,
                          const torch::Device& device) {
  const MappedFile file(path);
  const auto bytes = file.bytes();
  checked_entries(bytes, path.string(), nullptr);
  try {
    archive.load_from(bytes.data(), bytes.size(), device);
  } catch (const c10::Error& e) {
    fail(path.string(), fmt::format("cannot be read as a LibTorch archive: {}", one_line_message(e)));
  }
}

bool archive_validation_available() { return MP_HAVE_LIBZIP != 0; }

StateDict state_dict(const torch::nn::Module& module) {
  StateDict state;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    state.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    state.emplace_back(item.key(), item.value());
  return state;
}

void save_state_dict(const torch::nn::Module& module, const fs::path& path) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  atomic_write(path, [&](const fs::path& tmp) { archive.save_to(tmp.string()); });
}

void save_for_python(const c10::IValue& value, const fs::path& path) {
  const std::vector<char> bytes = torch::pickle_save(value);
  write_file_atomically(path, std::string_view(bytes.data(), bytes.size()));
}

void save_state_dict_for_python(const torch::nn::Module& module, const fs::path& path) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [key, tensor] : state_dict(module)) dict.insert(key, tensor.detach().cpu());
  save_for_python(dict, path);
}

StateDict read_state_dict(std::string_view bytes, const std::string& name) {
  std::string data_pkl;
  const auto entries = checked_entries(bytes, name, &data_pkl);
  // Without libzip the entries are unknown: try the LibTorch archive first, then the Python pickle.
  if (entries.empty() || is_libtorch_archive(entries)) {
    try {
      torch::serialize::InputArchive archive;
      archive.load_from(bytes.data(), bytes.size(), torch::kCPU);
      StateDict state;
      flatten_archive(archive, "", state);
      return state;
    } catch (const c10::Error& e) {
      if (!entries.empty())
        fail(name, fmt::format("cannot be read as a LibTorch archive: {}", one_line_message(e)));
    }
  }
  return state_dict_from_ivalue(unpickle(bytes, name, data_pkl), name);
}

StateDict read_state_dict(const fs::path& path) {
  std::unique_ptr<MappedFile> file;
  try {
    file = std::make_unique<MappedFile>(path);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot load a state dict: {}", e.what()));
  }
  return read_state_dict(file->bytes(), path.string());
}

c10::IValue load_from_python(const fs::path& path) {
  const MappedFile file(path);
  std::string data_pkl;
  checked_entries(file.bytes(), path.string(), &data_pkl);
  return unpickle(file.bytes(), path.string(), data_pkl);
}

void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& source) {
  const StateDict expected = state_dict(module);
  std::map<std::string, torch::Tensor> given;
  for (const auto& [key, tensor] : state) given.emplace(key, tensor);

  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> expected_keys;
  for (const auto& [key, tensor] : expected) {
    expected_keys.insert(key);
    const auto found = given.find(key);
    if (found == given.end()) {
      missing.push_back(key);
    } else if (found->second.sizes() != tensor.sizes()) {
      mismatched.push_back(fmt::format("{} is {} in the model but {} in the file", key,
                                       format_shape(tensor.sizes()), format_shape(found->second.sizes())));
    } else if (found->second.scalar_type() != tensor.scalar_type()) {
      mismatched.push_back(fmt::format("{} is {} in the model but {} in the file", key,
                                       c10::toString(tensor.scalar_type()),
                                       c10::toString(found->second.scalar_type())));
    }
  }
  for (const auto& [key, tensor] : state) {
    if (expected_keys.count(key) == 0) unexpected.push_back(key);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::vector<std::string> parts;
    if (!missing.empty()) parts.push_back(fmt::format("missing keys: {}", fmt::join(missing, ", ")));
    if (!unexpected.empty()) parts.push_back(fmt::format("unexpected keys: {}", fmt::join(unexpected, ", ")));
    if (!mismatched.empty()) parts.push_back(fmt::format("mismatches: {}", fmt::join(mismatched, "; ")));
    throw std::runtime_error(
        fmt::format("{} does not fit the model ({}); load only files saved from the same "
                    "architecture, with the same dtypes",
                    source, fmt::join(parts, "; ")));
  }
  // Everything was checked first, so the copy cannot fail half-way and leave the module half-loaded.
  torch::NoGradGuard no_grad;
  for (const auto& [key, tensor] : expected) {
    auto target = tensor;
    target.copy_(given.at(key));
  }
}

void load_state_dict(torch::nn::Module& module, const fs::path& path) {
  load_state_dict(module, read_state_dict(path), path.string());
}

}  // namespace common
