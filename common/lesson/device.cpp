#include "common/lesson/device.h"

#include <algorithm>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

namespace common {

torch::Device try_gpu(int i) {
  if (i >= 0 && torch::cuda::is_available() && static_cast<size_t>(i) < torch::cuda::device_count()) {
    return {torch::kCUDA, static_cast<c10::DeviceIndex>(i)};
  }
  return torch::kCPU;
}

std::vector<torch::Device> try_all_gpus() {
  std::vector<torch::Device> devices;
  if (torch::cuda::is_available()) {
    for (size_t i = 0; i < torch::cuda::device_count(); ++i) {
      devices.emplace_back(torch::kCUDA, static_cast<c10::DeviceIndex>(i));
    }
  }
  if (devices.empty()) devices.emplace_back(torch::kCPU);
  return devices;
}

torch::Device parse_device(const std::string& spec) {
  if (spec == "auto") return try_gpu();
  if (spec == "cpu") return torch::kCPU;
  // "cuda" or "cuda:N" with N of one to three digits. Read by hand: <regex> alone added seconds to this
  // unit's compile, which every lesson waits for on a fresh build.
  const std::string_view text(spec);
  const auto digits = text.substr(std::min<size_t>(text.size(), 5));
  const bool is_cuda =
      text == "cuda" ||
      (text.substr(0, 5) == "cuda:" && !digits.empty() && digits.size() <= 3 &&
       std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }));
  if (!is_cuda) {
    throw std::invalid_argument(fmt::format("unknown device '{}': expected auto, cpu, cuda or cuda:N", spec));
  }
  const int index = digits.empty() ? 0 : std::stoi(std::string(digits));
  if (!torch::cuda::is_available()) {
    throw std::invalid_argument(
        fmt::format("device '{}' asked for, but CUDA is not available here (no GPU, or a CPU-only LibTorch); "
                    "use --device cpu or --device auto",
                    spec));
  }
  const auto count = torch::cuda::device_count();
  if (static_cast<size_t>(index) >= count) {
    throw std::invalid_argument(fmt::format(
        "device '{}' does not exist: this machine has {} GPU(s), cuda:0 to cuda:{}", spec, count, count - 1));
  }
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
}

std::string device_name(const torch::Device& device) { return device.str(); }

}  // namespace common
