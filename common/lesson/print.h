#pragma once
// Printing that reads beside the notes: shapes in Python's list form, and tensors short enough to read.
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

namespace common {

// Tensors up to this many elements are printed (and recorded for the parity check) in full; larger
// ones as their shape, sum, norm and first elements.
inline constexpr int64_t kFullTensorLimit = 64;

// The length of the well-formed UTF-8 sequence at text[i] (0: none). Overlong forms and code points past
// U+10FFFF never are one; encoded surrogates (U+D800..U+DFFF) are only when `surrogates` is true, as
// Python's "surrogatepass" decoding of a pickle's strings lets them through.
size_t utf8_sequence(std::string_view text, size_t i, bool surrogates = false);

// Text that came from a file, safe for a terminal: control bytes (C0, DEL, C1) and bytes that are not
// UTF-8 written as \xNN escapes, every other character Python does not call printable (line and
// paragraph separators, format characters such as the bidirectional overrides, spaces other than ' ',
// private use) as \uNNNN or \UNNNNNNNN, and anything past max_bytes cut with a mark that says how long
// it was.
std::string printable(std::string_view text, size_t max_bytes = 120);

// "[2, 10]"
std::string format_shape(torch::IntArrayRef shape);

// Values with 4 decimals in nested brackets, or a summary for large tensors. Any device or dtype.
std::string format_tensor(const torch::Tensor& t);

// The record of a tensor for values.json: {"shape", "dtype", "values"} in full, or
// {"shape", "dtype", "sum", "norm", "first"} past kFullTensorLimit. data/python/parity.py mirrors it.
nlohmann::ordered_json tensor_record(const torch::Tensor& t);

}  // namespace common

namespace common {

// The module as LibTorch prints it: every child on its own line under its registered name.
std::string format_module(const torch::nn::Module& module);

// A terminal histogram of a tensor's values: one row per bin, a bar of '#' proportional to its count.
std::string format_histogram(const torch::Tensor& values, int bins = 12, int width = 40);

}  // namespace common
