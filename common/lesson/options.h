#pragma once
// The options every lesson takes, parsed by CLI11. This header and options.cpp need only c10's Device, not
// <torch/torch.h>: options.cpp, which compiles CLI11, then builds beside the precompiled header on a fresh
// build instead of after it (docs/PERFORMANCE.md, a newcomer's first run).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <c10/core/Device.h>

// CLI11 is header-only: a lesson that names CLI::App compiles all of it. Only the lessons that add
// options of their own include <CLI/CLI.hpp>; the rest rebuild in a fraction of the time.
namespace CLI {
class App;
class Validator;
}  // namespace CLI

namespace common {

// Exit status of a lesson or tool that was given bad input.
inline constexpr int kExitBadInput = 2;

// The check of a floating-point option: a number within [min, max]. CLI11's Range lets NaN through (every
// comparison with NaN is false), and "inf" parses as a double too.
CLI::Validator finite_range(double min, double max);

// Thrown by Options::parse after --help: exit_status() turns it into status 0.
struct HelpShown {};

// The options every lesson takes. A lesson with only these parses them as it makes them:
//   const common::Options options("01_blocks", "Bloques: ...", argc, argv);
// A lesson with flags of its own declares them in its header, in a struct derived from Options whose
// constructor adds them to cli() and then calls parse() (lessons/09_file_io/file_io.h).
class Options {
 public:
  Options(std::string name, const std::string& description);
  Options(std::string name, const std::string& description, int argc, char** argv);
  ~Options();
  Options(const Options&) = delete;
  Options& operator=(const Options&) = delete;

  // Include <CLI/CLI.hpp> to add options.
  CLI::App& cli() { return *cli_; }
  // Parses and checks the options. --help prints the help and ends the program with status 0 (through
  // exit_status()); a bad option is an error naming it.
  void parse(int argc, char** argv);

  std::string name;
  int64_t seed = 0;
  c10::Device device{c10::kCPU};
  std::filesystem::path out_dir;
  // Put before every line the lesson prints (lesson 13's "[rank k] "), set before the Lesson is made.
  std::string line_prefix;

  // Whether --device named a device, rather than leaving the choice to the lesson ("auto").
  bool device_chosen() const { return device_text_ != "auto"; }

 private:
  // The command line alone (options.cpp); parse() then resolves the device, which needs LibTorch.
  void parse_arguments(int argc, char** argv);

  std::string device_text_ = "auto";
  std::unique_ptr<CLI::App> cli_;
};

}  // namespace common
