#include "common/launch/environment.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "common/lesson/print.h"

namespace common::launch {

namespace {

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

int environment_int(const char* name, const std::string& text, int min, int max) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < min || value > max)
    throw std::invalid_argument(fmt::format("{}={} in the environment is not a whole number from {} to {}",
                                            name, printable(text), min, max));
  return value;
}

}  // namespace

std::string first_slurm_host(const std::string& nodes) {
  const auto bracket = nodes.find('[');
  const auto comma = nodes.find(',');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket))
    return nodes.substr(0, comma);
  const auto first = nodes.substr(bracket + 1, nodes.find_first_of("-,]", bracket + 1) - bracket - 1);
  return nodes.substr(0, bracket) + first;
}

namespace {

// Whether text can be a host name or an IP address (letters, digits, '.', '-', '_', and for IPv6 ':', '%'
// and brackets), checked before c10d is given it: c10d writes an address it cannot resolve into its own
// log lines, control bytes and all.
bool host_like(const std::string& text) {
  return !text.empty() && text.size() <= 253 && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::strchr(".-_:%[]", c) != nullptr;
  });
}

}  // namespace

Launch resolve_launch(const LaunchOptions& options) {
  Launch launch = options.values;
  const auto rank = environment("RANK");
  const auto world = environment("WORLD_SIZE");
  const auto slurm_rank = environment("SLURM_PROCID");
  const auto slurm_tasks = environment("SLURM_NTASKS");
  std::optional<int> env_rank, env_world;
  std::optional<std::string> env_addr = environment("MASTER_ADDR");
  std::optional<int> env_port;
  if (rank && world) {
    launch.by = "torchrun";
    env_rank = environment_int("RANK", *rank, 0, kMaxWorldSize - 1);
    env_world = environment_int("WORLD_SIZE", *world, 1, kMaxWorldSize);
    if (const auto local = environment("LOCAL_RANK"))
      launch.local_rank = environment_int("LOCAL_RANK", *local, 0, kMaxWorldSize - 1);
    launch.meeting.agent_store =
        environment("TORCHELASTIC_USE_AGENT_STORE") == std::optional<std::string>("True");
    if (const auto restarts = environment("TORCHELASTIC_RESTART_COUNT"))
      launch.meeting.attempt = environment_int("TORCHELASTIC_RESTART_COUNT", *restarts, 0, 1000000);
  } else if (slurm_rank && slurm_tasks) {
    launch.by = "Slurm";
    env_rank = environment_int("SLURM_PROCID", *slurm_rank, 0, kMaxWorldSize - 1);
    env_world = environment_int("SLURM_NTASKS", *slurm_tasks, 1, kMaxWorldSize);
    if (const auto local = environment("SLURM_LOCALID"))
      launch.local_rank = environment_int("SLURM_LOCALID", *local, 0, kMaxWorldSize - 1);
    if (!env_addr) {
      const auto nodes = environment("SLURM_JOB_NODELIST") ? environment("SLURM_JOB_NODELIST")
                                                           : environment("SLURM_NODELIST");
      if (nodes) env_addr = first_slurm_host(*nodes);
    }
    if (!environment("MASTER_PORT")) env_port = 29500;  // torchrun's default port
  } else {
    if (!host_like(launch.meeting.addr))
      throw std::invalid_argument(fmt::format("--master-addr {} is not a host name or an IP address",
                                              printable(launch.meeting.addr, 60)));
    return launch;
  }
  if (env_addr && !host_like(*env_addr))
    throw std::invalid_argument(fmt::format(
        "MASTER_ADDR={} in the environment is not a host name or an IP address", printable(*env_addr, 60)));
  if (const auto port = environment("MASTER_PORT"))
    env_port = environment_int("MASTER_PORT", *port, 1, 65535);
  const auto take = [&](const char* option, bool given, auto& value, const auto& from_env,
                        const char* variable) {
    if (!from_env) return;
    if (given && value != *from_env)
      throw std::invalid_argument(fmt::format("{} {} and {}={} from {} disagree; pass one or the other",
                                              option, value, variable, *from_env, launch.by));
    value = *from_env;
  };
  const char* rank_variable = launch.by == "Slurm" ? "SLURM_PROCID" : "RANK";
  const char* world_variable = launch.by == "Slurm" ? "SLURM_NTASKS" : "WORLD_SIZE";
  take("--rank", options.rank_given, launch.rank, env_rank, rank_variable);
  take("--world-size", options.world_size_given, launch.world_size, env_world, world_variable);
  take("--master-addr", options.addr_given, launch.meeting.addr, env_addr, "MASTER_ADDR");
  take("--master-port", options.port_given, launch.meeting.port, env_port, "MASTER_PORT");
  if (!host_like(launch.meeting.addr))
    throw std::invalid_argument(fmt::format("--master-addr {} is not a host name or an IP address",
                                            printable(launch.meeting.addr, 60)));
  if (launch.meeting.port == 0)
    throw std::invalid_argument(
        fmt::format("started by {} without MASTER_PORT: pass --master-port", launch.by));
  return launch;
}

}  // namespace common::launch
