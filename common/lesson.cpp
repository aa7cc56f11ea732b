#include "common/lesson.h"

#include <iostream>

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
      ->check(CLI::NonNegativeNumber);
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

int guarded_main(const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cout.flush();
    fmt::print(stderr, "error: {}\n", one_line_message(e));
  } catch (...) {
    std::cout.flush();
    fmt::print(stderr, "error: unknown failure\n");
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
    fmt::print(stderr, "error: {} (see {} --help)\n", e.what(), name_);
    return kExitBadInput;
  }
  return guarded_main([&] {
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
}

}  // namespace common
