#include "common/lesson/lesson.h"

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <utility>

#include <fmt/ranges.h>

#include "common/files/files.h"
#include "common/lesson/device.h"
#include "common/lesson/print.h"

namespace common {

Options::Options(std::string name, const std::string& description, int argc, char** argv)
    : Options(std::move(name), description) {
  parse(argc, argv);
}

void Options::parse(int argc, char** argv) {
  parse_arguments(argc, argv);
  device = parse_device(device_text_);
}

Lesson::Lesson(const Options& options) : out_dir_(options.out_dir), prefix_(options.line_prefix) {
  std::error_code ec;
  out_dir_is_new_ = !std::filesystem::exists(std::filesystem::symlink_status(out_dir_, ec));
  ensure_writable_dir(out_dir_);
  fmt::print("{}{}: device {}, seed {}, output in {}\n", prefix_, options.name, device_name(options.device),
             options.seed, out_dir_.string());
}

Lesson::~Lesson() {
  // A run that fails before it writes anything leaves no new folder behind.
  if (!finished_ && out_dir_is_new_) {
    try {
      remove_empty_folders(out_dir_);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor on the error path reports nothing more
    }
  }
}

void Lesson::print_line(const std::string& text, int line) {
  fmt::print("{}{}\n", prefix_, text);
  output_.push_back({{"line", line}, {"text", text}});
}

void Lesson::record(const std::string& label, nlohmann::ordered_json value, const std::string& shown,
                    int line) {
  if (values_.contains(label)) throw std::logic_error(fmt::format("'{}' recorded twice", label));
  values_[label] = std::move(value);
  fmt::print("{}{}: {}\n", prefix_, label, shown);
  output_.push_back({{"line", line}, {"text", label + ": " + shown}, {"label", label}});
}

void Lesson::show(const std::string& label, const torch::Tensor& value, int line) {
  record(label, tensor_record(value), format_tensor(value), line);
}

void Lesson::show(const std::string& label, torch::IntArrayRef shape, int line) {
  record(label, shape.vec(), format_shape(shape), line);
}

void Lesson::show(const std::string& label, const std::vector<std::string>& value, int line) {
  record(label, value, fmt::format("{}", fmt::join(value, ", ")), line);
}

void Lesson::show(const std::string& label, const std::vector<double>& value, int line) {
  record(label, value, fmt::format("{:.4g}", fmt::join(value, ", ")), line);
}

void Lesson::show(const std::string& label, const std::string& value, int line) {
  record(label, value, value, line);
}

void Lesson::show(const std::string& label, const char* value, int line) {
  show(label, std::string(value), line);
}

void Lesson::show(const std::string& label, double value, int line) {
  record(label, value, fmt::format("{:.6g}", value), line);
}

void Lesson::show(const std::string& label, bool value, int line) {
  record(label, value, value ? "True" : "False", line);
}

void Lesson::show_integer(const std::string& label, int64_t value, int line) {
  record(label, value, std::to_string(value), line);
}

int Lesson::finish() {
  write_file_atomically(out_dir_ / "values.json", values_.dump(2) + "\n");
  write_file_atomically(out_dir_ / "output.json", output_.dump(1) + "\n");
  finished_ = true;
  return 0;
}

std::string one_line_message(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  std::string message = torch_error != nullptr ? torch_error->what_without_backtrace() : e.what();
  for (auto& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!message.empty() && message.back() == ' ') message.pop_back();
  // Messages carry names from files and from the command line: whatever escaped quoting on the way is
  // escaped here, and one line stays one readable line.
  return printable(message, 1500);
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
  } catch (...) {
    return exit_status();
  }
}

int exit_status() noexcept {
  try {
    throw;
  } catch (const HelpShown&) {
    return 0;
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

}  // namespace common
