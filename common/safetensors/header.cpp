// The safetensors reader: the header as the reference (the safetensors crate) reads and validates it, then
// each tensor's bytes with pread into their destination. Each rule names the reference's check it mirrors.
#include "common/safetensors/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

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

// The header's JSON, read event by event: each top-level value is built alone, handed over as soon as it
// is complete and dropped (its cost given back to the budget), so that only the value being read is in
// memory. Depth is limited as serde_json limits it. A key given twice in an object is noted where serde
// would tell: in a top-level value's own object (a struct's field, or a map's value that must be a
// string), and in the object one level below it (an enum written as a one-key map).
class Header {
 public:
  using Done = JsonDone;
  // `subject` starts each error: "its header" for a safetensors file, "it" for an index.
  Header(weights::Budget& budget, std::string subject, Done done)
      : budget_(budget), subject_(std::move(subject)), done_(std::move(done)) {}

  bool null() { return put(json(nullptr), 16); }
  bool boolean(bool v) { return put(json(v), 16); }
  bool number_integer(json::number_integer_t v) { return put(json(v), 16); }
  bool number_unsigned(json::number_unsigned_t v) { return put(json(v), 16); }
  bool number_float(json::number_float_t v, const std::string& /*text*/) {
    // serde_json multiplies a number's digits by its power of ten in floating point and refuses what
    // overflows, which near the largest double is not what the correctly rounded value says: past 1e308
    // no number is read, so that none is read where the reference refuses it.
    if (!(std::fabs(v) <= 1e308))
      return fail(fmt::format("{} holds a number too large to read alike everywhere", subject_));
    return put(json(v), 16);
  }
  bool string(std::string& v) {
    const uint64_t cost = 48 + v.size();
    return put(json(std::move(v)), cost);
  }
  bool binary(json::binary_t& /*v*/) { return fail(subject_ + " is not JSON"); }
  bool start_object(std::size_t /*n*/) { return open(json::object()); }
  bool start_array(std::size_t /*n*/) { return open(json::array()); }
  bool key(std::string& k) {
    if (stack_.empty()) {
      budget_.charge(96 + k.size(), "the names in it");
      top_key_ = k;
      return true;
    }
    charge(96 + k.size());
    auto& level = stack_.back();
    if (stack_.size() <= 2 && !level.keys.insert(k).second) {
      if (stack_.size() == 1) {
        repeats_.fields.push_back(k);
        if (!(*level.node)[k].is_string()) repeats_.overwritten_non_string = true;
      } else {
        repeats_.below.push_back(level.name);
      }
    }
    key_ = std::move(k);
    return true;
  }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t position, const std::string& /*token*/, const nlohmann::detail::exception& e) {
    if (error_.empty()) {
      // nlohmann's message, without its "[json.exception.parse_error.101] " prefix.
      std::string what = e.what();
      const auto cut = what.find("] ");
      error_ = fmt::format("{} is not valid JSON at byte {}: {}", subject_, position,
                           cut == std::string::npos ? what : what.substr(cut + 2));
    }
    return false;
  }

  const std::string& error() const { return error_; }
  bool finished() const { return finished_; }

 private:
  struct Level {
    json* node;
    std::string name;  // its key in its parent, or "#index"
    std::set<std::string> keys;
  };

  bool fail(std::string what) {
    error_ = std::move(what);
    return false;
  }
  void charge(uint64_t bytes) {
    budget_.charge(bytes, "the values in it");
    current_cost_ += bytes;
  }
  bool open(json container) {
    if (!started_) {
      if (!container.is_object()) return fail(subject_ + " is not a JSON object");
      started_ = true;
      depth_ = 1;
      return true;
    }
    if (++depth_ > kMaxDepth)
      return fail(fmt::format("{} nests more than {} levels deep", subject_, kMaxDepth));
    charge(64);
    std::string name = stack_.empty()                   ? top_key_
                       : stack_.back().node->is_array() ? "#" + std::to_string(stack_.back().node->size())
                                                        : key_;
    json* placed = place(std::move(container));
    stack_.push_back({placed, std::move(name), {}});
    return true;
  }
  bool close() {
    --depth_;
    if (stack_.empty()) {
      finished_ = true;
      return true;
    }
    stack_.pop_back();
    if (stack_.empty()) hand_over();
    return true;
  }
  bool put(json value, uint64_t cost) {
    if (!started_) return fail(subject_ + " is not a JSON object");
    charge(cost);
    place(std::move(value));
    if (stack_.empty()) hand_over();
    return true;
  }
  // Puts a value where the parse is: a new top-level value, an item of an array or a member of an object.
  json* place(json value) {
    if (stack_.empty()) {
      current_ = std::move(value);
      return &current_;
    }
    json& parent = *stack_.back().node;
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    json& member = parent[key_];
    member = std::move(value);
    return &member;
  }
  void hand_over() {
    done_(top_key_, std::move(current_), repeats_);
    current_ = json();
    repeats_ = {};
    budget_.refund(current_cost_);
    current_cost_ = 0;
  }

  weights::Budget& budget_;
  std::string subject_;
  Done done_;
  bool started_ = false;
  bool finished_ = false;
  size_t depth_ = 0;
  std::vector<Level> stack_;
  json current_;
  uint64_t current_cost_ = 0;
  std::string top_key_;
  std::string key_;
  Repeats repeats_;
  std::string error_;
};

std::optional<uint64_t> usize(const json& v) {
  if (!v.is_number_unsigned()) return std::nullopt;
  return v.get<uint64_t>();
}

}  // namespace

// RFC 3629 UTF-8, as Rust's str::from_utf8 checks the header: no overlong forms, no surrogates, nothing
// past U+10FFFF.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    const unsigned char c = byte(i);
    size_t n = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    if (byte(i + 1) < low || byte(i + 1) > high) return false;
    for (size_t k = 2; k <= n; ++k)
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return false;
    i += n + 1;
  }
  return true;
}

// --- The header ----------------------------------------------------------------------------------------

namespace {

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

void File::parse(uint64_t budget_bytes) {
  const Fail fail = [this](const std::string& what) {
    throw FileError(fmt::format("{}: not a valid safetensors file: {}", name_, what));
  };
  weights::Budget budget(budget_bytes);
  budget.name_file(name_);
  const uint64_t size = source_->size();
  // read_metadata: HeaderTooSmall, HeaderTooLarge, InvalidHeaderLength, InvalidHeader (UTF-8).
  if (size < 8) fail(fmt::format("it is {} bytes long, shorter than the 8-byte header length", size));
  unsigned char length[8];
  source_->read(0, length, sizeof length);
  const uint64_t n = weights::le64(length);
  if (n > kMaxHeaderBytes)
    fail(
        fmt::format("its header length is {} bytes, more than the format's limit of {}", n, kMaxHeaderBytes));
  if (n > size - 8) fail(fmt::format("its header length is {} bytes, past the end of the file", n));
  budget.charge(n, "its header");
  std::string text(n, '\0');
  source_->read(8, text.data(), text.size());
  if (!valid_utf8(text)) fail("its header is not valid UTF-8");
  // JSON text never holds a raw NUL (serde_json refuses it); nlohmann's parser would take it for the end
  // of the input and ignore what follows.
  if (text.find('\0') != std::string::npos) fail("its header holds a NUL byte");
  // nlohmann's parser skips a byte-order mark; serde_json, the reference's parser, refuses it.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) fail("its header starts with a byte-order mark");

  // HashMetadata: __metadata__ (once, null or a map of strings), then every other key a tensor, the last
  // of a name given twice kept as serde keeps it in a HashMap, each one checked as it is read.
  std::map<std::string, Parsed> tensors;
  bool metadata_seen = false;
  const auto error = parse_object(
      text, budget, "its header", [&](const std::string& key, json value, const Repeats& repeats) {
        if (key == "__metadata__") {
          if (metadata_seen) fail("its header gives __metadata__ twice");
          metadata_seen = true;
          if (!value.is_null()) metadata_ = metadata_entry(value, repeats, fail);
          return;
        }
        auto entry = tensor_entry(key, value, repeats, fail);
        budget.charge(128 + 8 * entry.shape.size(), "its tensors");  // what is kept of it
        tensors[key] = std::move(entry);
      });
  if (!error.empty()) fail(error);

  // Metadata::validate, in the order of data_offsets: each tensor starts where the one before it ended,
  // ends at or after its start, and holds exactly its shape's bytes (overflow checked); the last ends at
  // the end of the file (MetadataIncompleteBuffer).
  std::vector<std::pair<std::string, Parsed>> ordered(std::make_move_iterator(tensors.begin()),
                                                      std::make_move_iterator(tensors.end()));
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.begin, a.second.end) < std::pair(b.second.begin, b.second.end);
  });
  budget.charge(ordered.size() * sizeof(TensorInfo), "its tensors");
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
  header_cost_ = budget.used();
  if (start != size - 8 - n)
    fail(fmt::format("its tensors end {} bytes into its data, but the file holds {} bytes of data", start,
                     size - 8 - n));

  // A tensor LibTorch can hold: a known type, sizes and contiguous strides (products of the sizes, each
  // at least 1) that fit an int64. PyTorch 1.13 refuses such sizes in reshape; the suite refuses them all.
  tensors_.reserve(ordered.size());
  for (auto& [key, p] : ordered) {
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
    info.offset = 8 + n + p.begin;
    info.bytes = p.end - p.begin;
    tensors_.push_back(std::move(info));
  }
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

std::string parse_object(const std::string& text, weights::Budget& budget, const std::string& subject,
                         const JsonDone& done) {
  Header header(budget, subject, done);
  if (json::sax_parse(text, &header, json::input_format_t::json, /*strict=*/true) && header.finished())
    return "";
  return header.error().empty() ? subject + " is not valid JSON" : header.error();
}

}  // namespace common::safetensors
