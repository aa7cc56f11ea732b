// The header's JSON as serde_json, the reference's parser, reads it: in UTF-8 as Rust's str::from_utf8
// checks it, nested no deeper than serde_json's limit, each top-level value built alone and handed over
// as soon as it is complete. The safetensors header and the sharded index are both read through it.
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/safetensors/internal.h"
#include "common/safetensors/safetensors.h"

namespace common::safetensors {
using json = nlohmann::json;

namespace {

// A JSON object, read event by event: each top-level value is built alone, handed over as soon as it
// is complete and dropped (its cost given back to the budget), so that only the value being read is in
// memory. Depth is limited as serde_json limits it. A key given twice in an object is noted where serde
// would tell: in a top-level value's own object (a struct's field, or a map's value that must be a
// string), and in the object one level below it (an enum written as a one-key map).
class TopLevelReader {
 public:
  using Done = JsonDone;
  // `subject` starts each error: "its header" for a safetensors file, "it" for an index.
  TopLevelReader(weights::Budget& budget, std::string subject, Done done)
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

std::string parse_object(const std::string& text, weights::Budget& budget, const std::string& subject,
                         const JsonDone& done) {
  TopLevelReader header(budget, subject, done);
  if (json::sax_parse(text, &header, json::input_format_t::json, /*strict=*/true) && header.finished())
    return "";
  return header.error().empty() ? subject + " is not valid JSON" : header.error();
}

}  // namespace common::safetensors
