#include "tests/testing.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <thread>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/files/files.h"
#include "common/lesson/device.h"
#include "common/lesson/lesson.h"
#include "common/weights/state_dict.h"

extern char** environ;

namespace testing_mp {
namespace fs = std::filesystem;

namespace {
std::string describe(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream out;
  out << t.sizes() << " " << t.scalar_type() << " on " << t.device() << "\n" << t;
  return out.str();
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

::testing::AssertionResult tensors_equal(const torch::Tensor& actual, const torch::Tensor& expected) {
  if (actual.defined() && expected.defined() && actual.sizes() == expected.sizes() &&
      actual.scalar_type() == expected.scalar_type() && torch::equal(actual.cpu(), expected.cpu())) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "tensors differ\n actual: " << describe(actual) << "\n expected: " << describe(expected);
}

::testing::AssertionResult tensors_close(const torch::Tensor& actual, const torch::Tensor& expected,
                                         double rtol, double atol) {
  if (actual.defined() && expected.defined() && actual.sizes() == expected.sizes() &&
      torch::allclose(actual.cpu(), expected.cpu(), rtol, atol)) {
    return ::testing::AssertionSuccess();
  }
  auto result = ::testing::AssertionFailure()
                << "tensors not close (rtol " << rtol << ", atol " << atol << ")";
  if (actual.defined() && expected.defined() && actual.sizes() == expected.sizes()) {
    result
        << ", max abs difference "
        << (actual.cpu().to(torch::kDouble) - expected.cpu().to(torch::kDouble)).abs().max().item<double>();
  }
  return result << "\n actual: " << describe(actual) << "\n expected: " << describe(expected);
}

namespace {
// Every test starts from the same generator state, whatever ran before it in the same process, so a
// test's random numbers are the same on every run.
class SeedEachTest : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { torch::manual_seed(0); }
};
const bool kSeedEachTestRegistered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new SeedEachTest);
  return true;
}();
}  // namespace

std::vector<std::string> devices_under_test() {
  (void)kSeedEachTestRegistered;
  std::vector<std::string> devices{"cpu"};
  for (const auto& d : common::try_all_gpus()) {
    if (d.is_cuda()) devices.push_back(d.str());
  }
  if (devices.size() == 1) devices.emplace_back("cuda:0");
  return devices;
}

std::pair<std::optional<torch::Device>, std::string> device_or_reason(const std::string& spec) {
  try {
    return {common::parse_device(spec), ""};
  } catch (const std::exception& e) {
    return {std::nullopt, fmt::format("{} is not available here: {}", spec, e.what())};
  }
}

void OnDevice::SetUp() {
  auto [device, reason] = device_or_reason(GetParam());
  if (!device) GTEST_SKIP() << reason;
  device_ = *device;
}

std::string device_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (auto& c : name) {
    if (c == ':') c = '_';
  }
  return name;
}

RunResult run_program(const std::vector<std::string>& argv, const RunOptions& options) {
  const fs::path dir = fresh_dir("run");
  const fs::path out_path = dir / "stdout", err_path = dir / "stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  if (options.stderr_to == "closed") {
    posix_spawn_file_actions_addclose(&actions, STDERR_FILENO);
  } else {
    const auto& target = options.stderr_to.empty() ? err_path.string() : options.stderr_to;
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, target.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  for (const auto& e : options.environment) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  RunResult result;
  if (rc != 0) {
    result.err = fmt::format("cannot start {}: {}", argv[0], std::strerror(rc));
    return result;
  }
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  int status = 0;
  bool watched = false;
  struct rusage usage {};
  while (true) {
    const pid_t done = wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) break;
    if (!result.timed_out && elapsed() > options.timeout_seconds) {
      result.timed_out = true;
      kill(pid, SIGKILL);
    }
    std::error_code ec;
    if (!options.kill_when_exists.empty() && !result.killed && fs::exists(options.kill_when_exists, ec)) {
      result.killed = true;
      kill(pid, SIGKILL);
    }
    if (options.watch && !watched) watched = options.watch(pid);
    const bool closely = !options.kill_when_exists.empty() || (options.watch && !watched);
    std::this_thread::sleep_for(std::chrono::milliseconds(closely ? 1 : 5));
  }
  result.seconds = elapsed();
  result.max_rss_kb = usage.ru_maxrss;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  return result;
}

nlohmann::json read_values(const fs::path& out_dir) {
  const auto path = out_dir / "values.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return nlohmann::json::parse(in);
}

LessonRun run_lesson(const std::vector<std::string>& argv, const RunOptions& options) {
  LessonRun run;
  static_cast<RunResult&>(run) = run_program(argv, options);
  const auto out_dir = std::find(argv.begin(), argv.end(), "--out-dir");
  if (out_dir != argv.end() && out_dir + 1 != argv.end()) run.out_dir = *(out_dir + 1);
  return run;
}

void remove_entries_after(const fs::path& dir, const std::string& last) {
  std::vector<fs::path> newer;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string() > last) newer.push_back(entry.path());
  }
  for (const auto& path : newer) fs::remove(path);
}

fs::path fresh_dir(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name =
      info != nullptr ? fmt::format("{}.{}", info->test_suite_name(), info->name()) : "no-test";
  for (auto& c : name) {
    if (c == '/') c = '_';
  }
  static int counter = 0;
  fs::path dir =
      fs::path(MP_BINARY_DIR) / "test-output" / name / fmt::format("{}{}-{}", tag, getpid(), ++counter);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string python_with_torch() {
  const std::string python = MP_PYTHON_DEFAULT;
  if (python.empty()) return "";
  const auto result = run_program({python, "-c", "import torch"});
  return result.exit_code == 0 ? python : "";
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::map<std::string, std::string> snapshot(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir))
    files[std::filesystem::relative(entry.path(), dir).string()] =
        entry.is_regular_file() ? read_text(entry.path()) : "<dir>";
  return files;
}

bool has_control_bytes(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n' && i + 1 == text.size()) continue;
    if (c < 0x20 || c == 0x7F) return true;
    if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) < 0xA0)
      return true;  // a C1 control in UTF-8
    // U+2028 and U+2029 end a line as '\n' does; U+202A..U+202E and U+2066..U+2069 reorder what follows.
    if (c == 0xE2 && i + 2 < text.size()) {
      const auto b1 = static_cast<unsigned char>(text[i + 1]), b2 = static_cast<unsigned char>(text[i + 2]);
      if ((b1 == 0x80 && b2 >= 0xA8 && b2 <= 0xAE) || (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9)) return true;
    }
  }
  return false;
}

std::vector<std::string> training_args(const std::string& binary, const std::filesystem::path& out_dir,
                                       const std::string& epochs) {
  return {binary,       "--device", "cpu",          "--out-dir", out_dir.string(),     "--epochs", epochs,
          "--examples", "512",      "--batch-size", "32",        "--checkpoint-every", "5"};
}

std::vector<std::string> short_training_args(const std::string& binary, const std::filesystem::path& out_dir,
                                             const std::string& epochs) {
  return {binary,       "--device", "cpu",          "--out-dir", out_dir.string(),
          "--examples", "64",       "--batch-size", "32",        "--checkpoint-every",
          "1",          "--epochs", epochs};
}

std::vector<std::string> distributed_args(const std::string& binary, const std::filesystem::path& out_dir,
                                          int world_size, const std::vector<std::string>& extra) {
  return with({binary, "--device", "cpu", "--out-dir", out_dir.string(), "--world-size",
               std::to_string(world_size), "--timeout", "10"},
              extra);
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& extra) {
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> changed(std::vector<std::string> args, const std::string& option,
                                 const std::string& value) {
  const auto at = std::find(args.begin(), args.end(), option);
  if (at == args.end()) return with(args, {option, value});
  *(at + 1) = value;
  return args;
}

void plant(const fs::path& from, const fs::path& to, const Change& change) {
  auto checkpoint = common::read_value(from).toGenericDict();
  change(checkpoint);
  common::save_for_python(checkpoint, to);
}

pid_t child_of(pid_t parent, const std::function<bool(const std::string&, const std::string&)>& match) {
  for (const auto& process : fs::directory_iterator("/proc")) {
    std::ifstream stat(process.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent) continue;
    if (match(read_text(process.path() / "cmdline"), read_text(process.path() / "environ")))
      return static_cast<pid_t>(std::stoi(process.path().filename()));
  }
  return 0;
}

std::string load_error(torch::nn::Module& module, const std::filesystem::path& path) {
  try {
    common::load_state_dict(module, path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace testing_mp
