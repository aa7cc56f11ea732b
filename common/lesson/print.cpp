#include "common/lesson/print.h"

#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace common {

size_t utf8_sequence(std::string_view text, size_t i, bool surrogates) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const auto c = byte(0);
  const size_t n = c < 0x80                   ? 1
                   : (c >= 0xC2 && c <= 0xDF) ? 2
                   : (c >= 0xE0 && c <= 0xEF) ? 3
                   : (c >= 0xF0 && c <= 0xF4) ? 4
                                              : 0;
  if (n == 0 || n > text.size() - i) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((byte(k) & 0xC0) != 0x80) return 0;
  if (n > 1 && ((c == 0xE0 && byte(1) < 0xA0) || (!surrogates && c == 0xED && byte(1) > 0x9F) ||
                (c == 0xF0 && byte(1) < 0x90) || (c == 0xF4 && byte(1) > 0x8F)))
    return 0;
  return n;
}

namespace {

// The code point of a valid UTF-8 sequence of n bytes at p.
uint32_t code_point(const unsigned char* p, size_t n) {
  if (n == 1) return p[0];
  uint32_t cp = p[0] & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (p[k] & 0x3F);
  return cp;
}

// Characters that Python's str.isprintable() calls not printable, beyond C0, DEL and C1: separators of
// lines and paragraphs, spaces other than ' ', format characters (among them the bidirectional overrides
// that reorder what a terminal shows), private use and noncharacters. Unassigned code points are shown.
bool invisible(uint32_t cp) {
  constexpr std::pair<uint32_t, uint32_t> kRanges[] = {
      {0x00A0, 0x00A0},   {0x00AD, 0x00AD},   {0x0600, 0x0605},   {0x061C, 0x061C},   {0x06DD, 0x06DD},
      {0x070F, 0x070F},   {0x0890, 0x0891},   {0x08E2, 0x08E2},   {0x1680, 0x1680},   {0x180E, 0x180E},
      {0x2000, 0x200F},   {0x2028, 0x202F},   {0x205F, 0x2064},   {0x2066, 0x206F},   {0x3000, 0x3000},
      {0xD800, 0xF8FF},   {0xFDD0, 0xFDEF},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD},
      {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
      {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF}};
  if ((cp & 0xFFFE) == 0xFFFE) return true;  // U+FFFE, U+FFFF and their twins in every plane
  for (const auto& [first, last] : kRanges)
    if (first <= cp && cp <= last) return true;
  return false;
}

}  // namespace

std::string printable(std::string_view text, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < text.size() && out.size() < max_bytes) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t n = utf8_sequence(text, i);
    // A C1 control (U+0080..U+009F) is obeyed by terminals like ESC.
    const bool control =
        c < 0x20 || c == 0x7F || (c == 0xC2 && n == 2 && static_cast<unsigned char>(text[i + 1]) < 0xA0);
    if (n == 0 || control) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
      continue;
    }
    const uint32_t cp = code_point(reinterpret_cast<const unsigned char*>(text.data() + i), n);
    if (n > 1 && invisible(cp)) {
      out += cp > 0xFFFF ? fmt::format("\\U{:08x}", cp) : fmt::format("\\u{:04x}", cp);
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  if (i < text.size()) out += fmt::format("... ({} bytes, cut)", text.size());
  return out;
}

namespace {

std::string format_scalar(const torch::Tensor& t) {
  if (t.is_floating_point()) {
    const double v = t.item<double>();
    // Rounding noise such as a mean of -2e-9 would print as -0.0000 and hide what it is.
    if (v != 0 && std::abs(v) < 1e-4) return fmt::format("{:.2e}", v);
    return fmt::format("{:.4f}", v);
  }
  if (t.scalar_type() == torch::kBool) return t.item<bool>() ? "True" : "False";
  return fmt::format("{}", t.item<int64_t>());
}

void format_nested(const torch::Tensor& t, std::string& out) {
  if (t.dim() == 0) {
    out += format_scalar(t);
    return;
  }
  out += '[';
  for (int64_t i = 0; i < t.size(0); ++i) {
    if (i > 0) out += ", ";
    format_nested(t[i], out);
  }
  out += ']';
}

std::vector<double> flat_values(const torch::Tensor& t, int64_t limit) {
  auto flat = t.detach().to(torch::kCPU, torch::kDouble).reshape({-1});
  const auto n = std::min(flat.numel(), limit);
  const double* data = flat.data_ptr<double>();
  return {data, data + n};
}

}  // namespace

std::string format_shape(torch::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string format_tensor(const torch::Tensor& t) {
  if (!t.defined()) return "undefined (Python shows None)";
  auto cpu = t.detach().to(torch::kCPU);
  if (cpu.numel() <= kFullTensorLimit) {
    std::string out;
    format_nested(cpu, out);
    return out;
  }
  return fmt::format("shape {}, sum {:.4f}, norm {:.4f}, first {:.4f}", format_shape(cpu.sizes()),
                     cpu.sum().item<double>(), cpu.to(torch::kDouble).norm().item<double>(),
                     fmt::join(flat_values(cpu, 4), ", "));
}

nlohmann::ordered_json tensor_record(const torch::Tensor& t) {
  nlohmann::ordered_json record;
  if (!t.defined()) return record;  // null, as Python's None
  auto cpu = t.detach().to(torch::kCPU);
  record["shape"] = cpu.sizes().vec();
  record["dtype"] = std::string(c10::toString(cpu.scalar_type()));
  if (cpu.numel() <= kFullTensorLimit) {
    record["values"] = flat_values(cpu, kFullTensorLimit);
  } else {
    auto as_double = cpu.to(torch::kDouble);
    record["sum"] = as_double.sum().item<double>();
    record["norm"] = as_double.norm().item<double>();
    record["first"] = flat_values(cpu, 8);
  }
  return record;
}

}  // namespace common

namespace common {

std::string format_module(const torch::nn::Module& module) {
  std::ostringstream out;
  // Module's operator<< prints children recursively, each under the name it was registered with.
  out << module;
  return out.str();
}

std::string format_histogram(const torch::Tensor& values, int bins, int width) {
  auto flat = values.detach().to(torch::kCPU, torch::kDouble).reshape({-1});
  const double lo = flat.min().item<double>();
  const double hi = flat.max().item<double>();
  if (lo == hi) return fmt::format("  all {} values equal {:.4g}\n", flat.numel(), lo);
  auto counts = torch::histc(flat, bins, lo, hi);
  const double most = counts.max().item<double>();
  std::string out;
  const double step = (hi - lo) / bins;
  for (int i = 0; i < bins; ++i) {
    const auto count = counts[i].item<double>();
    const int bar = static_cast<int>(std::lround(width * count / most));
    out += fmt::format("  [{:>8.3f}, {:>8.3f}) {:<{}} {}\n", lo + i * step, lo + (i + 1) * step,
                       std::string(bar, '#'), width, static_cast<int64_t>(count));
  }
  return out;
}

}  // namespace common
