// The safetensors reader: the header as the reference (the safetensors crate) reads and validates it, then
// each tensor's bytes with pread into their destination. Each rule names the reference's check it mirrors.
#include "common/safetensors/safetensors.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

#include "common/lesson/print.h"
#include "common/safetensors/internal.h"
#include "common/weights/internal.h"

namespace common::safetensors {
namespace fs = std::filesystem;
using json = nlohmann::json;
using weights::Fail;

namespace {

std::optional<uint64_t> usize(const json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  return v.get<uint64_t>();
}

struct Parsed {
  std::string dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// A tensor entry as serde derives TensorInfo: an object with dtype, shape and data_offsets (other fields
// ignored, a field given twice refused), or an array of exactly those three.
Parsed tensor_entry(const std::string& name, const json& v, const Repeats& repeats, const Fail& fail) {
  const auto bad = [&](const std::string& what) {
    fail(fmt::format("tensor '{}' in its header {}", printable(name, 80), what));
  };
  const json* dtype = nullptr;
  const json* shape = nullptr;
  const json* offsets = nullptr;
  if (v.is_object()) {
    for (const auto& repeated : repeats.fields)
      if (repeated == "dtype" || repeated == "shape" || repeated == "data_offsets")
        bad(fmt::format("gives its {} twice", repeated));
    const auto field = [&](const char* key) -> const json* {
      const auto found = v.find(key);
      if (found == v.end()) bad(fmt::format("has no {}", key));
      return &*found;
    };
    dtype = field("dtype");
    shape = field("shape");
    offsets = field("data_offsets");
  } else if (v.is_array() && v.size() == 3) {
    dtype = &v[0];
    shape = &v[1];
    offsets = &v[2];
  } else {
    bad("is not an object with dtype, shape and data_offsets");
  }
  Parsed p;
  // serde reads an enum's unit variant from its name, or from a one-key object {"F32": null}.
  const bool dtype_repeats = std::find(repeats.below.begin(), repeats.below.end(),
                                       v.is_object() ? "dtype" : "#0") != repeats.below.end();
  if (dtype->is_object() && dtype->size() == 1 && !dtype_repeats && dtype->begin().value().is_null())
    p.dtype = dtype->begin().key();
  else if (dtype->is_string())
    p.dtype = dtype->get<std::string>();
  else
    bad("has a dtype that is not a string");
  if (dtype_named(p.dtype) == nullptr)
    bad(fmt::format("has the dtype '{}', which is not a safetensors dtype", printable(p.dtype, 40)));
  if (!shape->is_array()) bad("has a shape that is not a list");
  for (const auto& s : *shape) {
    const auto n = usize(s);
    if (!n) bad("has a shape that is not a list of non-negative integers");
    p.shape.push_back(*n);
  }
  if (!offsets->is_array() || offsets->size() != 2 || !usize((*offsets)[0]) || !usize((*offsets)[1]))
    bad("has data_offsets that are not two non-negative integers");
  p.begin = *usize((*offsets)[0]);
  p.end = *usize((*offsets)[1]);
  return p;
}

std::map<std::string, std::string> metadata_entry(const json& v, const Repeats& repeats, const Fail& fail) {
  std::map<std::string, std::string> m;
  if (!v.is_object() || repeats.overwritten_non_string)
    fail("its header's __metadata__ is not a map of strings to strings");
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string()) fail("its header's __metadata__ is not a map of strings to strings");
    m.emplace(key, value.get<std::string>());
  }
  return m;
}

}  // namespace

File::File(std::shared_ptr<weights::WeightsFile::Source> source, std::string name, uint64_t budget_bytes)
    : source_(std::move(source)), name_(std::move(name)) {
  parse(budget_bytes);
}

File File::open(const fs::path& path, uint64_t budget_bytes) {
  return File(weights::open_source(path), path.string(), budget_bytes);
}

File File::from_bytes(std::string bytes, std::string name, uint64_t budget_bytes) {
  return File(weights::bytes_source(std::move(bytes)), std::move(name), budget_bytes);
}

namespace {

// read_metadata: HeaderTooSmall, HeaderTooLarge, InvalidHeaderLength, InvalidHeader (UTF-8). The header's
// text, from byte 8.
std::string header_text(const weights::WeightsFile::Source& source, weights::Budget& budget,
                        const Fail& fail) {
  const uint64_t size = source.size();
  if (size < 8) fail(fmt::format("it is {} bytes long, shorter than the 8-byte header length", size));
  unsigned char length[8];
  source.read(0, length, sizeof length);
  const uint64_t n = weights::le64(length);
  if (n > kMaxHeaderBytes)
    fail(
        fmt::format("its header length is {} bytes, more than the format's limit of {}", n, kMaxHeaderBytes));
  if (n > size - 8) fail(fmt::format("its header length is {} bytes, past the end of the file", n));
  budget.charge(n, "its header");
  std::string text(n, '\0');
  source.read(8, text.data(), text.size());
  if (!valid_utf8(text)) fail("its header is not valid UTF-8");
  // JSON text never holds a raw NUL (serde_json refuses it); nlohmann's parser would take it for the end
  // of the input and ignore what follows.
  if (text.find('\0') != std::string::npos) fail("its header holds a NUL byte");
  // nlohmann's parser skips a byte-order mark; serde_json, the reference's parser, refuses it.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) fail("its header starts with a byte-order mark");
  return text;
}

// HashMetadata: __metadata__ (once, null or a map of strings), then every other key a tensor, the last
// of a name given twice kept as serde keeps it in a HashMap, each one checked as it is read.
std::map<std::string, Parsed> header_entries(const std::string& text, weights::Budget& budget,
                                             std::optional<std::map<std::string, std::string>>& metadata,
                                             const Fail& fail) {
  std::map<std::string, Parsed> tensors;
  bool metadata_seen = false;
  const auto error = parse_object(
      text, budget, "its header", [&](const std::string& key, json value, const Repeats& repeats) {
        if (key == "__metadata__") {
          if (metadata_seen) fail("its header gives __metadata__ twice");
          metadata_seen = true;
          if (!value.is_null()) metadata = metadata_entry(value, repeats, fail);
          return;
        }
        auto entry = tensor_entry(key, value, repeats, fail);
        budget.charge(128 + 8 * entry.shape.size(), "its tensors");  // what is kept of it
        tensors[key] = std::move(entry);
      });
  if (!error.empty()) fail(error);
  return tensors;
}

// Metadata::validate, in the order of data_offsets: each tensor starts where the one before it ended,
// ends at or after its start, and holds exactly its shape's bytes (overflow checked). Returns where the
// last one ends.
uint64_t check_offsets(const std::vector<std::pair<std::string, Parsed>>& ordered, const Fail& fail) {
  uint64_t start = 0;
  for (const auto& [key, p] : ordered) {
    const auto shown = printable(key, 80);
    if (p.begin != start || p.end < p.begin)
      fail(
          fmt::format("tensor '{}' does not start where the one before it ends (data_offsets [{}, {}], "
                      "expected to start at {})",
                      shown, p.begin, p.end, start));
    start = p.end;
    const DtypeName* d = dtype_named(p.dtype);
    uint64_t elements = 1;
    bool overflow = false;
    for (const auto s : p.shape) overflow = overflow || __builtin_mul_overflow(elements, s, &elements);
    uint64_t bits = 0;
    overflow = overflow || __builtin_mul_overflow(elements, static_cast<uint64_t>(d->bits), &bits);
    if (overflow) fail(fmt::format("tensor '{}' has a shape whose size overflows", shown));
    if (bits % 8 != 0) fail(fmt::format("tensor '{}' does not fill a whole number of bytes", shown));
    if (p.end - p.begin != bits / 8)
      fail(fmt::format("tensor '{}' has {} bytes of data, but its shape {} of {} needs {}", shown,
                       p.end - p.begin, fmt::join(p.shape, "x"), p.dtype, bits / 8));
  }
  return start;
}

// A tensor LibTorch can hold: a known type, sizes and contiguous strides (products of the sizes, each
// at least 1) that fit an int64. PyTorch 1.13 refuses such sizes in reshape; the suite refuses them all.
TensorInfo tensor_info(const std::string& key, const Parsed& p, uint64_t data_start, const Fail& fail) {
  const DtypeName* d = dtype_named(p.dtype);
  if (d->bits < 8)
    fail(
        fmt::format("tensor '{}' has the dtype {}, whose elements are smaller than a byte; the suite does "
                    "not read them",
                    printable(key, 80), p.dtype));
  if (!d->type)
    fail(fmt::format("tensor '{}' has the dtype {}, which this LibTorch ({}) has no type for",
                     printable(key, 80), p.dtype, TORCH_VERSION));
  TensorInfo info;
  info.name = key;
  info.dtype_name = p.dtype;
  info.dtype = *d->type;
  int64_t span = 1;
  for (const auto s : p.shape) {
    if (s > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(span, std::max<int64_t>(1, static_cast<int64_t>(s)), &span))
      fail(fmt::format("tensor '{}' has sizes whose strides LibTorch cannot hold", printable(key, 80)));
    info.shape.push_back(static_cast<int64_t>(s));
  }
  info.offset = data_start + p.begin;
  info.bytes = p.end - p.begin;
  return info;
}

}  // namespace

void File::parse(uint64_t budget_bytes) {
  const Fail fail = [this](const std::string& what) {
    throw FileError(fmt::format("{}: not a valid safetensors file: {}", name_, what));
  };
  weights::Budget budget(budget_bytes);
  budget.name_file(name_);
  const std::string text = header_text(*source_, budget, fail);
  auto tensors = header_entries(text, budget, metadata_, fail);
  std::vector<std::pair<std::string, Parsed>> ordered(std::make_move_iterator(tensors.begin()),
                                                      std::make_move_iterator(tensors.end()));
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.begin, a.second.end) < std::pair(b.second.begin, b.second.end);
  });
  budget.charge(ordered.size() * sizeof(TensorInfo), "its tensors");
  const uint64_t end = check_offsets(ordered, fail);
  header_cost_ = budget.used();
  // The last tensor ends at the end of the file (MetadataIncompleteBuffer).
  const uint64_t data_start = 8 + text.size();
  if (end != source_->size() - data_start)
    fail(fmt::format("its tensors end {} bytes into its data, but the file holds {} bytes of data", end,
                     source_->size() - data_start));
  tensors_.reserve(ordered.size());
  for (const auto& [key, p] : ordered) tensors_.push_back(tensor_info(key, p, data_start, fail));
}

void File::read_into(const std::vector<std::pair<const TensorInfo*, torch::Tensor>>& targets) const {
  std::vector<weights::Range> direct;
  for (const auto& [info, target] : targets) {
    TORCH_CHECK(target.scalar_type() == info->dtype && static_cast<uint64_t>(target.nbytes()) == info->bytes,
                "read_into: the target does not have the tensor's dtype and size");
    if (target.device().is_cpu() && target.is_contiguous()) {
      direct.push_back({info->offset, info->bytes, static_cast<char*>(target.data_ptr())});
    } else {
      auto into = target;
      into.copy_(read(*info).view_as(target));
    }
  }
  weights::read_ranges(*source_, direct, /*crc=*/false);
}

torch::Tensor File::read(const TensorInfo& info) const {
  auto t = torch::empty(info.shape, torch::TensorOptions().dtype(info.dtype));
  read_into({{&info, t}});
  return t;
}

}  // namespace common::safetensors
