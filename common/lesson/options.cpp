#include "common/lesson/options.h"

#include <charconv>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

namespace common {

Options::Options(std::string lesson_name, const std::string& description)
    : name(std::move(lesson_name)), cli_(std::make_unique<CLI::App>(description, name)) {
  out_dir = std::filesystem::path("lesson-output") / name;
  cli_->add_option("--device", device_text_, "auto, cpu, cuda or cuda:N (auto: the first GPU, else the CPU)")
      ->capture_default_str();
  cli_->add_option("--seed", seed, "seed of the random generator; the same seed prints the same numbers")
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
  cli_->add_option("--out-dir", out_dir, "folder for the files the lesson writes (values.json and others)")
      ->capture_default_str();
}

CLI::Validator finite_range(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        double value = 0;
        // from_chars takes "nan" and "inf" as numbers: they are refused below, as every number outside.
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        const std::string shown = text.size() > 24 ? text.substr(0, 21) + "..." : text;
        if (error != std::errc() || end != text.data() + text.size())
          return fmt::format("{} is not a number", shown);
        if (!(min <= value && value <= max)) return fmt::format("{} is outside [{}, {}]", shown, min, max);
        return "";
      },
      fmt::format("FLOAT in [{} - {}]", min, max));
}

Options::~Options() = default;

void Options::parse_arguments(int argc, char** argv) {
  try {
    cli_->parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", cli_->help());
    throw HelpShown{};
  } catch (const CLI::ParseError& e) {
    throw std::invalid_argument(fmt::format("{} (see {} --help)", e.what(), name));
  }
}

}  // namespace common
