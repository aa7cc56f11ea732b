#include "common/device.h"

#include <regex>
#include <stdexcept>

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
  static const std::regex cuda_re{R"(cuda(?::([0-9]{1,3}))?)"};
  std::smatch m;
  if (!std::regex_match(spec, m, cuda_re)) {
    throw std::invalid_argument(fmt::format("unknown device '{}': expected auto, cpu, cuda or cuda:N", spec));
  }
  const int index = m[1].matched ? std::stoi(m[1].str()) : 0;
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
