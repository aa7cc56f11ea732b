// A weights file as a whole: its records, its code checked, its pickle run; its tensors are read by
// tensors.cpp.
#include "common/weights/weights.h"

#include <algorithm>
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

}  // namespace common::weights
