#include "common/lesson.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <iostream>

#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include "common/device.h"
#include "common/files.h"
#include "common/print.h"

namespace common {

Lesson::Lesson(std::string name, torch::Device device, int64_t seed, std::filesystem::path out_dir)
    : name_(std::move(name)), device_(device), seed_(seed), out_dir_(std::move(out_dir)) {}

void Lesson::banner(const std::string& title_es, const std::string& subtitle_en) const {
  fmt::print("{}\n", format_banner(title_es, subtitle_en));
}

void Lesson::record(const std::string& key, nlohmann::ordered_json value) {
  if (values_.contains(key)) throw std::logic_error(fmt::format("values.json key '{}' recorded twice", key));
  values_[key] = std::move(value);
}

void Lesson::show(const std::string& key, const std::string& label, const torch::Tensor& value) {
  fmt::print("{}: {}\n", label, format_tensor(value));
  record(key, tensor_record(value));
}

void Lesson::show(const std::string& key, const std::string& label, torch::IntArrayRef shape_value) {
  fmt::print("{}: {}\n", label, format_shape(shape_value));
  record(key, shape_value.vec());
}

void Lesson::show(const std::string& key, const std::string& label, const std::vector<std::string>& value) {
  fmt::print("{}: {}\n", label, fmt::join(value, ", "));
  record(key, value);
}

void Lesson::show(const std::string& key, const std::string& label, const std::string& value) {
  fmt::print("{}: {}\n", label, value);
  record(key, value);
}

void Lesson::show(const std::string& key, const std::string& label, const char* value) {
  show(key, label, std::string(value));
}

void Lesson::show(const std::string& key, const std::string& label, double value) {
  fmt::print("{}: {:.6g}\n", label, value);
  record(key, value);
}

void Lesson::show(const std::string& key, const std::string& label, int64_t value) {
  fmt::print("{}: {}\n", label, value);
  record(key, value);
}

void Lesson::show(const std::string& key, const std::string& label, int value) {
  show(key, label, static_cast<int64_t>(value));
}

void Lesson::show(const std::string& key, const std::string& label, bool value) {
  fmt::print("{}: {}\n", label, value ? "yes" : "no");
  record(key, value);
}

void Lesson::write_values() const { write_file_atomically(out_dir_ / "values.json", values_.dump(2) + "\n"); }

LessonApp::LessonApp(std::string name, const std::string& description)
    : name_(std::move(name)), cli_(std::make_unique<CLI::App>(description, name_)) {
  options_.out_dir = std::filesystem::path("lesson-output") / name_;
  cli_->add_option("--device", options_.device,
                   "auto, cpu, cuda or cuda:N (auto: the first GPU, else the CPU)")
      ->capture_default_str();
  cli_->add_option("--seed", options_.seed,
                   "seed of the random generator; the same seed prints the same numbers")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            // Checked on the text, before CLI11 converts it (and clamps what does not fit in 64 bits).
            int64_t value = 0;
            const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
            const std::string shown = text.size() > 24 ? text.substr(0, 21) + "..." : text;
            if (error == std::errc::result_out_of_range || (error == std::errc() && value < 0))
              return fmt::format("{} is out of range (0 to {})", shown, INT64_MAX);
            if (error != std::errc() || end != text.data() + text.size())
              return fmt::format("{} is not a whole number", shown);
            return "";
          },
          "SEED"));
  cli_->add_option("--out-dir", options_.out_dir,
                   "folder for the files the lesson writes (values.json and others)")
      ->capture_default_str();
}

LessonApp::~LessonApp() = default;

std::string one_line_message(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  std::string message = torch_error != nullptr ? torch_error->what_without_backtrace() : e.what();
  for (auto& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!message.empty() && message.back() == ' ') message.pop_back();
  return message;
}

namespace {
// The error path must not fail in turn: with stderr closed or full (2>&-, 2>/dev/full) a stream would
// throw or abort. write(2) reports the failure, and there is nobody left to tell, so it is ignored.
void write_stderr_line(const char* prefix, const std::string& message) noexcept {
  std::fflush(stdout);
  const auto write_all = [](const char* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(STDERR_FILENO, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return;
      p += w;
      n -= static_cast<size_t>(w);
    }
  };
  try {
    const std::string line = prefix + message + "\n";
    write_all(line.data(), line.size());
  } catch (...) {
    static constexpr char kFallback[] = "error: out of memory while reporting an error\n";
    write_all(kFallback, sizeof kFallback - 1);
  }
}
}  // namespace

void print_error(const std::string& message) noexcept { write_stderr_line("error: ", message); }
void print_warning(const std::string& message) noexcept { write_stderr_line("warning: ", message); }

int guarded_main(const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::string message;
    try {
      message = one_line_message(e);
    } catch (...) {
      message = "unknown failure";
    }
    print_error(message);
  } catch (...) {
    print_error("unknown failure");
  }
  return kExitBadInput;
}

int LessonApp::run(int argc, char** argv, const std::function<void(Lesson&)>& body) {
  try {
    cli_->parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", cli_->help());
    return 0;
  } catch (const CLI::ParseError& e) {
    print_error(fmt::format("{} (see {} --help)", e.what(), name_));
    return kExitBadInput;
  }
  // A run that fails before it writes anything leaves no new folder behind.
  std::error_code ec;
  const bool out_dir_is_new = !std::filesystem::exists(std::filesystem::symlink_status(options_.out_dir, ec));
  const int status = guarded_main([&] {
    const torch::Device device = parse_device(options_.device);
    ensure_writable_dir(options_.out_dir);
    torch::manual_seed(static_cast<uint64_t>(options_.seed));
    Lesson lesson(name_, device, options_.seed, options_.out_dir);
    fmt::print("{}: device {}, seed {}, output in {}\n", name_, device_name(device), options_.seed,
               options_.out_dir.string());
    body(lesson);
    lesson.write_values();
    return 0;
  });
  if (status != 0 && out_dir_is_new) remove_empty_folders(options_.out_dir);
  return status;
}

}  // namespace common
