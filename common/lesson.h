#pragma once
// What every lesson shares: the same options (--device, --seed, --out-dir), the main wrapper that turns
// any error into one "error: ..." line and exit status 2, and the narration that prints a value and
// records it, under a key, in values.json (the file the parity tests compare with Python's output).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

// CLI11 is header-only: a lesson that names CLI::App compiles all of it. Only the lessons that add
// options of their own include <CLI/CLI.hpp>; the rest rebuild in a fraction of the time.
namespace CLI {
class App;
}  // namespace CLI

namespace common {

// Exit status of a lesson or tool that was given bad input.
inline constexpr int kExitBadInput = 2;

struct LessonOptions {
  std::string device = "auto";
  int64_t seed = 0;
  std::filesystem::path out_dir;
};

// The running lesson, handed to its body: the chosen device, the seeded generator, and narration.
class Lesson {
 public:
  Lesson(std::string name, torch::Device device, int64_t seed, std::filesystem::path out_dir);

  const std::string& name() const { return name_; }
  const torch::Device& device() const { return device_; }
  int64_t seed() const { return seed_; }
  const std::filesystem::path& out_dir() const { return out_dir_; }

  // Opens a notebook section.
  void banner(const std::string& title_es, const std::string& subtitle_en) const;

  // A line of narration that records nothing.
  template <typename... Args>
  void say(fmt::format_string<Args...> format, Args&&... args) const {
    fmt::print("{}\n", fmt::format(format, std::forward<Args>(args)...));
  }

  // Prints "label: value" and records the value under key in values.json.
  void show(const std::string& key, const std::string& label, const torch::Tensor& value);
  void show(const std::string& key, const std::string& label, torch::IntArrayRef shape_value);
  void show(const std::string& key, const std::string& label, const std::vector<std::string>& value);
  void show(const std::string& key, const std::string& label, const std::string& value);
  void show(const std::string& key, const std::string& label, const char* value);
  void show(const std::string& key, const std::string& label, double value);
  void show(const std::string& key, const std::string& label, int64_t value);
  void show(const std::string& key, const std::string& label, int value);
  void show(const std::string& key, const std::string& label, bool value);

  const nlohmann::ordered_json& values() const { return values_; }
  // Writes values.json into out_dir, atomically.
  void write_values() const;

 private:
  void record(const std::string& key, nlohmann::ordered_json value);

  std::string name_;
  torch::Device device_;
  int64_t seed_;
  std::filesystem::path out_dir_;
  nlohmann::ordered_json values_ = nlohmann::ordered_json::object();
};

// The options and the main wrapper of one lesson executable:
//
//   int main(int argc, char** argv) {
//     common::LessonApp app("01_blocks", "Bloques: Sequential and a custom block");
//     return app.run(argc, argv, [](common::Lesson& lesson) { ... });
//   }
//
// A lesson that takes more options adds them to app.cli() before run().
class LessonApp {
 public:
  LessonApp(std::string name, const std::string& description);
  ~LessonApp();
  LessonApp(const LessonApp&) = delete;
  LessonApp& operator=(const LessonApp&) = delete;

  // Include <CLI/CLI.hpp> to add options.
  CLI::App& cli() { return *cli_; }
  const LessonOptions& options() const { return options_; }

  // Parses the options, seeds the generator, picks the device, creates the output folder, runs body
  // and writes values.json. Returns 0, or kExitBadInput after one "error: ..." line on stderr.
  int run(int argc, char** argv, const std::function<void(Lesson&)>& body);

 private:
  std::string name_;
  std::unique_ptr<CLI::App> cli_;
  LessonOptions options_;
};

// Runs body and turns any exception into one "error: ..." line on stderr and kExitBadInput; LibTorch's
// errors lose their C++ backtrace on the way. Every executable's main goes through it.
int guarded_main(const std::function<int()>& body);

// Writes "error: <message>" and a newline to stderr with write(2), ignoring any failure: it never throws,
// whether stderr is closed, full or a broken pipe.
void print_error(const std::string& message) noexcept;
// The same for "warning: <message>".
void print_warning(const std::string& message) noexcept;

// The message of an exception as one line: LibTorch's without its backtrace, newlines folded.
std::string one_line_message(const std::exception& e);

}  // namespace common
