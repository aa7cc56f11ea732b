// A weights file as a whole: its records, its code checked, its pickle run, and then its tensors, each
// storage read once and each tensor a view of it, as Python rebuilds them.
#include "common/weights/weights.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/lesson/print.h"
#include "common/weights/internal.h"

namespace common::weights {
namespace fs = std::filesystem;

void Budget::charge(uint64_t bytes, const char* what) {
  if (bytes <= left_) {
    left_ -= bytes;
    return;
  }
  throw FileError(fmt::format(
      "{}: reading it needs more than the reader's budget of {} MiB (it ran out on {}); a state dict costs "
      "about 1 KB a tensor, so this file is not one",
      file_, total_ >> 20, what));
}

const char* Value::kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kTensor:
      return "tensor";
    case Kind::kObject:
      return "module object";
    case Kind::kGlobal:
      return "global";
    case Kind::kStorage:
      return "storage";
  }
  return "value";
}

// Both are bounded when the tensor is parsed: its element count fits an int64, and so does every partial
// product of its sizes (a size of 0 is checked first).
int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (const auto s : sizes) n *= s;
  return n;
}

bool TensorRef::contiguous() const {
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    if (sizes[i] != 1 && strides[i] != expected) return false;
    expected *= sizes[i];
  }
  return true;
}

// --- Opening -------------------------------------------------------------------------------------

WeightsFile::WeightsFile(std::shared_ptr<Source> source, std::string name, uint64_t budget_bytes)
    : source_(std::move(source)), name_(std::move(name)), budget_(std::make_shared<Budget>(budget_bytes)) {
  budget_->name_file(name_);
}

void WeightsFile::fail(const std::string& what) const { throw FileError(fmt::format("{}: {}", name_, what)); }

Fail WeightsFile::failing() const {
  return [this](const std::string& what) { fail(what); };
}

std::shared_ptr<Source> open_source(const fs::path& path) {
  const std::string name = path.string();
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw FileError(fmt::format("cannot open {}: {}", name, std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw FileError(fmt::format("cannot read {}: {}", name, std::strerror(error)));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    const char* what = S_ISDIR(info.st_mode)                            ? "a folder"
                       : S_ISFIFO(info.st_mode)                         ? "a FIFO (named pipe)"
                       : S_ISCHR(info.st_mode) || S_ISBLK(info.st_mode) ? "a device"
                       : S_ISSOCK(info.st_mode)                         ? "a socket"
                                                                        : "not a regular file";
    throw FileError(fmt::format("{} is {}, not a file; give the path of a saved model file", name, what));
  }
  return fd_source(fd, static_cast<uint64_t>(info.st_size), name);
}

WeightsFile WeightsFile::open(const fs::path& path, uint64_t budget_bytes) {
  WeightsFile file(open_source(path), path.string(), budget_bytes);
  file.parse();
  return file;
}

WeightsFile WeightsFile::from_bytes(std::string bytes, std::string name, uint64_t budget_bytes) {
  WeightsFile file(bytes_source(std::move(bytes)), std::move(name), budget_bytes);
  file.parse();
  return file;
}

namespace {

// A TorchScript archive (torch::save) may carry code; any method in it refuses the file. Returns the
// classes the code declares, by their TorchScript names ("code/__torch__/a.py" declares __torch__.a.X).
std::unordered_set<std::string> refuse_code(const Source& source, const std::vector<Record>& records,
                                            Budget& budget, const Fail& fail,
                                            std::unordered_multimap<std::string, std::string>& attributes) {
  std::unordered_set<std::string> classes;
  uint64_t code_bytes = 0;
  for (const auto& r : records) {
    if (r.name.rfind("code/", 0) != 0 || r.name.size() < 3 ||
        r.name.compare(r.name.size() - 3, 3, ".py") != 0)
      continue;
    if (r.size > kMaxCodeBytes || (code_bytes += r.size) > kMaxCodeBytes)
      fail("not a weights file: its TorchScript code is larger than any module of weights");
    const auto code = read_record(source, r, budget, fail);
    std::string module = r.name.substr(5, r.name.size() - 8);
    std::replace(module.begin(), module.end(), '/', '.');
    for (const auto& name : names_after(code, "class")) classes.insert(fmt::format("{}.{}", module, name));
    for (auto& declared : declared_attributes(code)) attributes.insert(std::move(declared));
    const auto methods = defined_methods(code);
    if (methods.empty()) continue;
    // __setstate__ is the one a loader runs; name it first when it is there.
    const bool setstate = std::find(methods.begin(), methods.end(), "__setstate__") != methods.end();
    std::vector<std::string> shown;
    for (size_t i = 0; i < methods.size() && i < 8; ++i) shown.push_back(printable(methods[i], 40));
    fail(fmt::format(
        "not a weights file: {} defines {} ({}), code that a loader would have to run; this reader "
        "loads only data, so the file is refused",
        printable(r.name), setstate ? "__setstate__" : shown.front(), fmt::join(shown, ", ")));
  }
  return classes;
}

// A small record's text, or "?" when it is too long to be what PyTorch writes there.
std::string small_record(const Source& source, const Record& r, Budget& budget, const Fail& fail) {
  return r.size <= 16 ? read_record(source, r, budget, fail) : std::string("?");
}

// The records PyTorch's reader checks before data.pkl: the version (it refuses an archive without one, or
// of a version it does not know, 1 to 10) and the byte order (2.x byte-swaps a big-endian file and 1.13
// does not: two readings, so such a file is refused, and so is a byte order PyTorch never writes).
void check_version_and_byteorder(const Source& source, const std::vector<Record>& records,
                                 const std::function<std::optional<size_t>(const char*)>& find,
                                 Budget& budget, const Fail& fail) {
  const auto version = find(".data/version") ? find(".data/version") : find("version");
  if (!version) fail("not a model file: the archive has no version record, without which PyTorch refuses it");
  const std::string text = small_record(source, records[*version], budget, fail);
  const auto digits = text.substr(0, text.find_last_not_of('\n') + 1);
  if (digits.empty() || digits.size() > 2 || digits.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(digits) < 1 || std::stoi(digits) > 10)
    fail(fmt::format("not a model file: archive version '{}', which PyTorch does not read", printable(text)));
  if (const auto order = find("byteorder")) {
    const std::string value = small_record(source, records[*order], budget, fail);
    if (value == "big")
      fail(
          "saved on a big-endian machine (byteorder: big); PyTorch versions read such files differently, so "
          "load it in Python on this machine and save it again");
    if (value != "little") fail(fmt::format("not a valid model file: byte order '{}'", printable(value)));
  }
}

}  // namespace

void WeightsFile::parse() {
  const Fail fail = failing();
  try {
    records_ = read_directory(*source_, *budget_, fail);
    storages_ = std::make_shared<std::vector<std::vector<Piece>>>(records_.size());
    std::unordered_map<std::string, size_t> by_name;
    // By name as PyTorch finds a record: whatever its ASCII case (read_directory refuses two names that
    // differ only in case).
    for (size_t i = 0; i < records_.size(); ++i) by_name.emplace(folded(records_[i].name), i);
    const auto find = [&](const std::string& name) -> std::optional<size_t> {
      const auto found = by_name.find(folded(name));
      return found == by_name.end() ? std::nullopt : std::optional<size_t>(found->second);
    };
    format_ = find("constants.pkl") ? "torch::save (TorchScript archive)" : "torch.save";
    const auto classes = refuse_code(*source_, records_, *budget_, fail, *attributes_);
    check_version_and_byteorder(*source_, records_, find, *budget_, fail);
    const auto pkl = find("data.pkl");
    if (!pkl) fail("not a model file: the archive has no data.pkl");
    const auto& pickle_record = records_[*pkl];
    if (pickle_record.size > kDefaultBudgetBytes)
      fail(fmt::format("not a weights file: its data.pkl is {} bytes, more than any state dict's",
                       pickle_record.size));
    const std::string pickle = read_record(*source_, pickle_record, *budget_, fail);
    // Only a TorchScript archive may name its classes, and only those its code declares.
    const std::unordered_set<std::string> none;
    root_ = run_pickle(pickle, records_, find, find("constants.pkl") ? classes : none, *budget_, fail);
  } catch (const FileError&) {
    throw;
  } catch (const std::bad_alloc&) {
    fail("not enough memory to read it");
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

bool WeightsFile::declares(const std::string& attribute, bool module) const {
  const auto [first, last] = attributes_->equal_range(attribute);
  for (auto it = first; it != last; ++it) {
    const auto& type = it->second;
    if (module ? type.rfind("__torch__", 0) == 0 : type.find("Tensor") != std::string::npos) return true;
  }
  return false;
}

// --- Reading tensors -------------------------------------------------------------------------------

void WeightsFile::verify(const std::vector<const TensorRef*>& refs) const {
  std::unordered_set<size_t> done;
  std::vector<Range> ranges;
  std::vector<const Record*> checked;
  for (const auto* ref : refs) {
    if (!done.insert(ref->record).second || !(*storages_)[ref->record].empty()) continue;
    const auto& r = records_.at(ref->record);
    ranges.push_back({r.offset, r.size, nullptr});
    checked.push_back(&r);
  }
  const auto crcs = read_ranges(*source_, ranges, /*crc=*/true);
  for (size_t i = 0; i < checked.size(); ++i) check_crc(*checked[i], crcs[i], failing());
}

void WeightsFile::stream(const Record& r,
                         const std::function<void(uint64_t at, const char* bytes, size_t n)>& visit) const {
  std::vector<char> slice(1 << 20);
  uint32_t crc = 0;
  for (uint64_t at = 0; at < r.size; at += slice.size()) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(slice.size(), r.size - at));
    source_->read(r.offset + at, slice.data(), n);
    crc = crc32(crc, slice.data(), n);
    if (visit) visit(at, slice.data(), n);
  }
  check_crc(r, crc, failing());
}

void WeightsFile::read_into(const std::vector<std::pair<const TensorRef*, torch::Tensor>>& targets) const {
  // Contiguous CPU targets are read into directly, all at once; the others through their storage.
  std::vector<Range> direct;
  for (const auto& [ref, target] : targets) {
    const auto& r = records_.at(ref->record);
    const auto element = static_cast<uint64_t>(c10::elementSize(ref->dtype));
    if (target.device().is_cpu() && target.is_contiguous() && target.scalar_type() == ref->dtype &&
        ref->contiguous() && target.numel() == ref->numel() && (*storages_)[ref->record].empty()) {
      direct.push_back({r.offset + static_cast<uint64_t>(ref->storage_offset) * element,
                        static_cast<uint64_t>(ref->numel()) * element,
                        static_cast<char*>(target.data_ptr())});
    } else {
      auto into = target;
      into.copy_(tensor(*ref));
    }
  }
  read_ranges(*source_, direct, /*crc=*/false);
}

namespace {

// The elements [first, last) of a storage that a tensor reaches; empty for a tensor of no elements.
std::pair<int64_t, int64_t> reach(const TensorRef& ref) {
  if (ref.numel() == 0) return {ref.storage_offset, ref.storage_offset};
  int64_t last = ref.storage_offset;
  for (size_t d = 0; d < ref.sizes.size(); ++d) last += (ref.sizes[d] - 1) * ref.strides[d];
  return {ref.storage_offset, last + 1};
}

}  // namespace

const std::vector<WeightsFile::Reached>& WeightsFile::reached() const {
  if (reached_) return *reached_;
  // Every tensor the root holds, however deep: the ones that may be made from the file.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> spans(records_.size());
  std::vector<Reached> out(records_.size());
  std::unordered_set<const Value*> seen;
  std::vector<const Value*> todo{root_.get()};
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    if (!seen.insert(v).second) continue;
    if (v->kind == Value::Kind::kTensor) {
      const auto [first, last] = reach(*v->tensor);
      if (first < last) spans[v->tensor->record].emplace_back(first, last);
      // A strided view reaches more elements than it holds; a stride-0 one holds more than it reaches.
      out[v->tensor->record].used += std::min(v->tensor->numel(), last - first);
    }
    for (const auto& item : v->items) todo.push_back(item.get());
    for (const auto& [key, value] : v->entries) {
      todo.push_back(key.get());
      todo.push_back(value.get());
    }
  }
  for (size_t r = 0; r < spans.size(); ++r) {
    auto& parts = spans[r];
    std::sort(parts.begin(), parts.end());
    auto& merged = out[r].parts;
    for (const auto& span : parts) {
      if (!merged.empty() && span.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, span.second);
      } else {
        merged.push_back(span);
      }
    }
  }
  reached_ = std::make_shared<std::vector<Reached>>(std::move(out));
  return *reached_;
}

void WeightsFile::read_storage(const TensorRef& ref) const {
  const auto& r = records_.at(ref.record);
  const auto element = static_cast<uint64_t>(c10::elementSize(ref.dtype));
  const auto& reached_parts = reached()[ref.record];
  uint64_t kept = 0;
  for (const auto& [first, last] : reached_parts.parts) kept += static_cast<uint64_t>(last - first) * element;
  // Python reads a storage whole however little of it its tensors view. So does this reader, unless more
  // than kUnreachedBytes of it is reached by no tensor: then the record is streamed once through its CRC,
  // and only the parts the tensors reach are kept, so that a small view of a huge record costs its view.
  // Views that reach far more than they hold (large strides) would cost what they reach: refused.
  const uint64_t used = static_cast<uint64_t>(reached_parts.used) * element;
  if (kept > used + kUnreachedBytes)
    fail(fmt::format(
        "its tensors hold {} bytes of storage {} but reach across {} bytes of it, all of which would have to "
        "be in memory; this reader refuses such a file (in Python, save each tensor's .clone())",
        used, printable(r.name), kept));
  std::vector<std::pair<int64_t, int64_t>> parts{{0, ref.storage_numel}};
  if (r.size - kept > kUnreachedBytes) {
    parts = reached_parts.parts;
    if (parts.empty()) parts = {{0, 0}};  // only tensors of no elements: nothing of it is kept
  }
  std::vector<Piece> out;
  out.reserve(parts.size());
  for (const auto& [first, last] : parts)
    out.push_back({first, torch::empty({last - first}, torch::TensorOptions().dtype(ref.dtype))});
  if (out.size() == 1 && out[0].first == 0 && out[0].data.nbytes() == r.size) {
    source_->read(r.offset, out[0].data.data_ptr(), static_cast<size_t>(r.size));
    check_crc(r, crc32(0, out[0].data.data_ptr(), static_cast<size_t>(r.size)), failing());
  } else {
    stream(r, [&](uint64_t at, const char* bytes, size_t n) {
      for (auto& piece : out) {
        const uint64_t begin = static_cast<uint64_t>(piece.first) * element;
        const uint64_t from = std::max(at, begin);
        const uint64_t to = std::min<uint64_t>(at + n, begin + piece.data.nbytes());
        if (from < to)
          std::memcpy(static_cast<char*>(piece.data.data_ptr()) + (from - begin), bytes + (from - at),
                      to - from);
      }
    });
  }
  (*storages_)[ref.record] = std::move(out);
}

const WeightsFile::Piece& WeightsFile::piece(const TensorRef& ref) const {
  try {
    if ((*storages_)[ref.record].empty()) read_storage(ref);
  } catch (const FileError&) {
    throw;
  } catch (const std::exception& e) {
    fail(fmt::format("cannot read storage {}: {}", printable(records_.at(ref.record).name), e.what()));
  }
  const auto& pieces = (*storages_)[ref.record];
  const auto [first, last] = reach(ref);
  for (const auto& p : pieces)
    if (p.first <= first && last <= p.first + p.data.numel()) return p;
  return pieces.front();  // a tensor of no elements, outside every part: any piece holds it
}

torch::Tensor WeightsFile::storage(const TensorRef& ref) const { return piece(ref).data; }

torch::Tensor WeightsFile::tensor(const TensorRef& ref) const {
  const auto& p = piece(ref);
  // Python's _rebuild_tensor: a tensor set on the storage, sharing it (not a copy, and not an autograd
  // view): a stride-0 tensor of any size costs its storage only. A tensor of no elements keeps its offset,
  // even past the storage's end, as Python's does; only one before a kept part of a huge storage (whose
  // offsets are relative to that part) starts at the part instead.
  int64_t offset = ref.storage_offset - p.first;
  if (ref.numel() == 0) offset = std::max<int64_t>(offset, 0);
  auto out = torch::empty({0}, p.data.options()).set_(p.data.storage(), offset, ref.sizes, ref.strides);
  if (ref.requires_grad) out.requires_grad_(true);
  return out;
}

}  // namespace common::weights
