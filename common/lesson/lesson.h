#pragma once
// What every lesson's main shares: the options (--device, --seed, --out-dir), the narration that prints a
// value and records it by its label in values.json (the file the parity tests compare with Python's),
// and the one place where any error becomes one "error: ..." line and exit status 2.
//
//   int main(int argc, char** argv) try {
//     const common::Options options("01_blocks", "Bloques: ...", argc, argv);
//     torch::manual_seed(options.seed);
//     common::Lesson lesson(options);
//
//     // %% Bloques
//     ...
//     lesson.show("net(X)", net->forward(X));
//     return lesson.finish();
//   } catch (...) {
//     return common::exit_status();
//   }
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/lesson/options.h"

namespace common {

// show() and say() take the source line of their call (__builtin_LINE() as a default argument, evaluated
// where the call is written): each printed line then knows its cell, which is how scripts/companion.sh
// puts the output under the cell that printed it.

// std::type_identity (C++20), so that say()'s arguments alone decide Args. fmt 11 no longer exports its own.
template <typename T>
struct TypeIdentity {
  using type = T;
};

// A format string and the line of the say() call that passes it. Immediate (consteval) where fmt's own
// format strings are (FMT_CONSTEVAL), so fmt still checks the format against the arguments at compile time.
template <typename... Args>
struct SaidAt {
  template <typename S, typename = std::enable_if_t<std::is_convertible_v<const S&, fmt::string_view>>>
  FMT_CONSTEVAL SaidAt(const S& text, int at = __builtin_LINE())  // NOLINT(google-explicit-constructor)
      : format(text), line(at) {}
  fmt::format_string<Args...> format;
  int line;
};

// The running lesson: prints what the cells show, records it for values.json, and writes values.json
// and output.json (each printed line with the source line that printed it) when the lesson finishes.
// A lesson that fails before finish() leaves no new empty folder behind.
class Lesson {
 public:
  explicit Lesson(const Options& options);
  ~Lesson();
  Lesson(const Lesson&) = delete;
  Lesson& operator=(const Lesson&) = delete;

  const std::filesystem::path& out_dir() const { return out_dir_; }

  // Prints "label: value" and records the value under its label.
  void show(const std::string& label, const torch::Tensor& value, int line = __builtin_LINE());
  void show(const std::string& label, torch::IntArrayRef shape, int line = __builtin_LINE());
  void show(const std::string& label, const std::vector<std::string>& value, int line = __builtin_LINE());
  void show(const std::string& label, const std::vector<double>& value, int line = __builtin_LINE());
  void show(const std::string& label, const std::string& value, int line = __builtin_LINE());
  void show(const std::string& label, const char* value, int line = __builtin_LINE());
  void show(const std::string& label, double value, int line = __builtin_LINE());
  void show(const std::string& label, bool value, int line = __builtin_LINE());
  template <typename Int, typename = std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>>>
  void show(const std::string& label, Int value, int line = __builtin_LINE()) {
    show_integer(label, static_cast<int64_t>(value), line);
  }

  // A line of narration that records nothing.
  template <typename... Args>
  void say(SaidAt<typename TypeIdentity<Args>::type...> format, Args&&... args) {
    print_line(fmt::format(format.format, std::forward<Args>(args)...), format.line);
  }

  const nlohmann::ordered_json& values() const { return values_; }

  // Writes values.json and output.json into the output folder, atomically. Returns 0, main's status.
  int finish();

 private:
  void show_integer(const std::string& label, int64_t value, int line);
  void print_line(const std::string& text, int line);
  void record(const std::string& label, nlohmann::ordered_json value, const std::string& shown, int line);

  std::filesystem::path out_dir_;
  std::string prefix_;
  bool out_dir_is_new_ = false;
  bool finished_ = false;
  nlohmann::ordered_json values_ = nlohmann::ordered_json::object();
  nlohmann::ordered_json output_ = nlohmann::ordered_json::array();
};

// For main's catch (...): reports the exception in flight as one "error: ..." line on stderr and
// returns kExitBadInput, or 0 after --help. Never throws.
int exit_status() noexcept;

// Runs body and turns any exception into one "error: ..." line on stderr and kExitBadInput. The tools'
// mains go through it.
int guarded_main(const std::function<int()>& body);

// Writes "error: <message>" and a newline to stderr with write(2), ignoring any failure: it never throws,
// whether stderr is closed, full or a broken pipe.
void print_error(const std::string& message) noexcept;
// The same for "warning: <message>".
void print_warning(const std::string& message) noexcept;

// The message of an exception as one line: LibTorch's without its backtrace, newlines folded.
std::string one_line_message(const std::exception& e);

}  // namespace common
