// Lesson 13 under the launchers clusters use: torchrun (with restarts that resume), Slurm's environment,
// and two hosts in two network namespaces.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/lesson/lesson.h"
#include "common/training/checkpoint.h"
#include "lessons/13_distributed/launcher.h"
#include "tests/testing.h"

namespace fs = std::filesystem;

namespace {

std::vector<std::string> lesson_args(const fs::path& out_dir, int world_size,
                                     const std::vector<std::string>& extra = {}) {
  return testing_mp::distributed_args(MP_LESSON_BINARY, out_dir, world_size, extra);
}

}  // namespace

// ---- The launchers clusters use: torchrun (this configuration's own, through python3 -m
// torch.distributed.run) and Slurm's environment.

namespace {

// The process whose parent is `parent` and whose environment holds `entry` ("RANK=1"), or 0.
pid_t child_with_environment(pid_t parent, const std::string& entry) {
  std::string wanted(1, '\0');
  wanted.append(entry).push_back('\0');
  return testing_mp::child_of(parent, [&](const std::string&, const std::string& environment) {
    return std::string(1, '\0').append(environment).find(wanted) != std::string::npos;
  });
}

// Two workers of the lesson under torchrun: the configuration's own torch.distributed.run, through
// scripts/torchrun.py, which changes nothing but the store's default where PyTorch lacks libuv (Debian 13's
// torchrun fails at start otherwise). Debian 12's PyTorch 1.13 knows only the underscore spellings of the
// options, and on Python 3.11 fails at start unless --redirects and --tee are given 1 or 2.
std::vector<std::string> torchrun_args(const std::string& python, const fs::path& out_dir, int max_restarts,
                                       const std::vector<std::string>& extra) {
  std::vector<std::string> args{python,
                                std::string(MP_SOURCE_DIR) + "/scripts/torchrun.py",
                                "--nproc_per_node",
                                "2",
                                "--master_port",
                                std::to_string(distributed::free_port()),
                                "--max_restarts",
                                std::to_string(max_restarts),
                                "--monitor_interval",
                                "1",
                                "--redirects",
                                "1",
                                "--tee",
                                "1",
                                "--no_python",
                                MP_LESSON_BINARY,
                                "--device",
                                "cpu",
                                "--timeout",
                                "10",
                                "--out-dir",
                                out_dir.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Whether process `pid` ignores SIGPIPE, from the SigIgn mask in /proc/<pid>/status.
bool ignores_sigpipe(pid_t pid) {
  std::ifstream status(fs::path("/proc") / std::to_string(pid) / "status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("SigIgn:", 0) == 0)
      return ((std::stoull(line.substr(7), nullptr, 16) >> (SIGPIPE - 1)) & 1U) != 0;
  return false;
}

// Kills torchrun's worker of RANK=1 with SIGKILL once `file` exists; `killed_at` says when. Just before,
// `survivor_ignores_sigpipe` records whether the worker of RANK=0 ignores SIGPIPE.
std::function<bool(pid_t)> kill_worker_one_when(const fs::path& file,
                                                std::chrono::steady_clock::time_point& killed_at,
                                                bool* survivor_ignores_sigpipe = nullptr) {
  return [file, &killed_at, survivor_ignores_sigpipe](pid_t torchrun) {
    std::error_code ec;
    if (!fs::exists(file, ec)) return false;
    const pid_t worker = child_with_environment(torchrun, "RANK=1");
    if (worker == 0) return false;
    if (survivor_ignores_sigpipe != nullptr)
      *survivor_ignores_sigpipe = ignores_sigpipe(child_with_environment(torchrun, "RANK=0"));
    kill(worker, SIGKILL);
    killed_at = std::chrono::steady_clock::now();
    return true;
  };
}

}  // namespace

// torchrun is Python's: without python3-torch these tests skip, saying so.
class Torchrun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (python.empty()) GTEST_SKIP() << "needs python3-torch for torchrun";
  }
  const std::string python = testing_mp::python_with_torch();
};

TEST_F(Torchrun, RunsTheLessonAndEndsWhereItsOwnLauncherEnds) {
  const std::vector<std::string> run{"--epochs", "2", "--examples", "512"};
  const auto own = testing_mp::fresh_dir("own");
  ASSERT_EQ(testing_mp::run_lesson(lesson_args(own, 2, run)).exit_code, 0);
  const auto dir = testing_mp::fresh_dir();
  const auto r = testing_mp::run_lesson(torchrun_args(python, dir, 0, run), {120});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("[rank 1] joined a gloo group of 2 ranks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("started by torchrun"), std::string::npos) << r.out;
  EXPECT_EQ(testing_mp::read_text(dir / "final.params"), testing_mp::read_text(own / "final.params"));
  EXPECT_EQ(testing_mp::read_values(dir)["loss per epoch"], testing_mp::read_values(own)["loss per epoch"]);
}

TEST_F(Torchrun, AKilledWorkerIsRestartedAndTheJobEndsOnTheUninterruptedBytes) {
  // 8192 examples in batches of 64: 128 steps an epoch; the kill comes after epoch 1's checkpoint.
  const std::vector<std::string> run{"--epochs", "4", "--examples", "8192"};
  const auto own = testing_mp::fresh_dir("own");
  ASSERT_EQ(testing_mp::run_lesson(lesson_args(own, 2, run)).exit_code, 0);
  const auto dir = testing_mp::fresh_dir();
  std::chrono::steady_clock::time_point killed_at;
  testing_mp::RunOptions options{180};
  options.watch = kill_worker_one_when(dir / "checkpoints" / common::checkpoint::file_name(128), killed_at);
  const auto r = testing_mp::run_lesson(torchrun_args(python, dir, 3, run), options);
  ASSERT_NE(killed_at, std::chrono::steady_clock::time_point{}) << "the worker was never killed\n" << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("resumed from rank 0's checkpoint"), std::string::npos) << r.out;
  EXPECT_EQ(testing_mp::read_text(dir / "final.params"), testing_mp::read_text(own / "final.params"));
}

TEST_F(Torchrun, WithoutRestartsALostWorkerFailsTheJobNamingIt) {
  const auto dir = testing_mp::fresh_dir();
  std::chrono::steady_clock::time_point killed_at;
  testing_mp::RunOptions options{180};
  bool survivor_ignores_sigpipe = false;
  options.watch = kill_worker_one_when(dir / "checkpoints" / common::checkpoint::file_name(128), killed_at,
                                       &survivor_ignores_sigpipe);
  const auto r = testing_mp::run_lesson(
      torchrun_args(python, dir, 0, {"--epochs", "20", "--examples", "8192"}), options);
  ASSERT_NE(killed_at, std::chrono::steady_clock::time_point{}) << "the worker was never killed\n" << r.err;
  // torchrun starts its workers with SIGPIPE's default action; a survivor that kept it could die writing to
  // the lost rank's socket (status -13) before saying which rank it lost.
  EXPECT_TRUE(survivor_ignores_sigpipe);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  // torchrun's own status for a failed job is 1. Its agent looks at the workers every --monitor_interval
  // (1 s here) and, finding rank 1 gone, stops the others with SIGTERM. So the lost rank is named by
  // whichever comes first: rank 0's own line, when its next collective fails before the agent stops it, or
  // the agent's line for the worker that died. Either way it is rank 1, killed by signal 9, and rank 0 was
  // not killed by SIGPIPE first (status -13, as before the lesson ignored it).
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto all = r.out + r.err;
  const bool rank_zero_named_it = all.find("error: rank 0: lost rank 1") != std::string::npos;
  const bool torchrun_named_it = all.find("failed (exitcode: -9) local_rank: 1 ") != std::string::npos;
  EXPECT_TRUE(rank_zero_named_it || torchrun_named_it) << all;
  EXPECT_EQ(all.find("failed (exitcode: -13)"), std::string::npos) << all;
  std::cout << "the lost rank was named by " << (rank_zero_named_it ? "rank 0" : "torchrun's agent") << "\n";
  EXPECT_LT(seconds, 15.0) << "the stated bound: --timeout (10 s) plus 5 s";
  std::cout << "torchrun ended " << seconds << " s after worker 1 was killed\n";
  EXPECT_FALSE(fs::exists(dir / "final.params"));
}

TEST(Launchers, SlurmsEnvironmentStartsTheRanksAsItsOwnLauncherDoes) {
  const std::vector<std::string> run{"--epochs", "2", "--examples", "512"};
  const auto own = testing_mp::fresh_dir("own");
  ASSERT_EQ(testing_mp::run_lesson(lesson_args(own, 2, run)).exit_code, 0);
  const auto dir = testing_mp::fresh_dir();
  const auto port = std::to_string(distributed::free_port());
  std::vector<testing_mp::LessonRun> results(2);
  std::vector<std::thread> ranks;
  ranks.reserve(2);
  for (int rank = 0; rank < 2; ++rank) {
    ranks.emplace_back([&, rank] {
      testing_mp::RunOptions options{120};
      options.environment = {"SLURM_PROCID=" + std::to_string(rank), "SLURM_NTASKS=2",
                             "SLURM_LOCALID=" + std::to_string(rank), "SLURM_JOB_NODELIST=localhost",
                             "MASTER_PORT=" + port};
      results[static_cast<size_t>(rank)] = testing_mp::run_lesson(
          testing_mp::with(
              {MP_LESSON_BINARY, "--device", "cpu", "--timeout", "20", "--out-dir", dir.string()}, run),
          options);
    });
  }
  for (auto& t : ranks) t.join();
  for (const auto& r : results) ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(results[0].out.find("started by Slurm"), std::string::npos) << results[0].out;
  EXPECT_EQ(testing_mp::read_text(dir / "final.params"), testing_mp::read_text(own / "final.params"));
}

TEST(Launchers, AnOptionThatContradictsTheLaunchersEnvironmentIsOneError) {
  const std::vector<std::pair<std::vector<std::string>, std::pair<std::vector<std::string>, std::string>>>
      cases{
          {{"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=29500"},
           {{"--rank", "1"}, "--rank 1 and RANK=0 from torchrun disagree"}},
          {{"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=29500"},
           {{"--world-size", "4"}, "--world-size 4 and WORLD_SIZE=2 from torchrun disagree"}},
          {{"RANK=zero", "WORLD_SIZE=2"},
           {{}, "RANK=zero in the environment is not a whole number from 0 to 7"}},
          {{"RANK=0", "WORLD_SIZE=2", "MASTER_PORT=70000"}, {{}, "MASTER_PORT=70000 in the environment"}},
          {{"SLURM_PROCID=1", "SLURM_NTASKS=2", "SLURM_JOB_NODELIST=localhost", "MASTER_PORT=29500"},
           {{"--master-port", "29501"}, "--master-port 29501 and MASTER_PORT=29500 from Slurm disagree"}},
          // An address is checked before c10d sees it: c10d would write it, raw, into its own log.
          {{"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=\x1b[31mhost\x07", "MASTER_PORT=29500"},
           {{}, "MASTER_ADDR=\\x1b[31mhost\\x07 in the environment is not a host name or an IP address"}},
          {{"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=host\xe2\x80\xa8name", "MASTER_PORT=29500"},
           {{}, "MASTER_ADDR=host\\u2028name in the environment is not a host name"}},
          {{"SLURM_PROCID=0", "SLURM_NTASKS=2", "SLURM_JOB_NODELIST=node 1", "MASTER_PORT=29500"},
           {{}, "MASTER_ADDR=node 1 in the environment is not a host name"}},
          {{},
           {{"--master-addr", "local host", "--world-size", "1"},
            "--master-addr local host is not a host name"}},
      };
  for (const auto& [environment, call] : cases) {
    const auto& [extra, expected] = call;
    testing_mp::RunOptions options{30};
    options.environment = environment;
    const auto r = testing_mp::run_lesson(
        testing_mp::with({MP_LESSON_BINARY, "--out-dir", testing_mp::fresh_dir().string()}, extra), options);
    EXPECT_EQ(r.exit_code, common::kExitBadInput) << expected << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("error: " + expected), std::string::npos) << r.err;
    EXPECT_FALSE(testing_mp::has_control_bytes(r.err)) << r.err;
  }
}

// ---- Two hosts: two network namespaces joined by a virtual Ethernet pair, each with its own address and
// host name, so that the store, the Gloo connections and the lost-rank message cross two network stacks as
// they would cross two machines. Needs root; elsewhere (not root, a chroot) it is skipped, saying why.

namespace {

class TwoHosts : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "making network namespaces needs root";
    // Names and a subnet of this process's own, so that parallel tests do not meet.
    const int id = getpid() % 200 + 20;
    a_ = fmt::format("mp-a-{}", getpid());
    b_ = fmt::format("mp-b-{}", getpid());
    address_a_ = fmt::format("10.213.{}.1", id);
    address_b_ = fmt::format("10.213.{}.2", id);
    const std::string veth_a = fmt::format("mpa{}", getpid()), veth_b = fmt::format("mpb{}", getpid());
    const std::vector<std::vector<std::string>> setup{
        {"ip", "netns", "add", a_},
        {"ip", "netns", "add", b_},
        {"ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b},
        {"ip", "link", "set", veth_a, "netns", a_},
        {"ip", "link", "set", veth_b, "netns", b_},
        {"ip", "-n", a_, "addr", "add", address_a_ + "/24", "dev", veth_a},
        {"ip", "-n", b_, "addr", "add", address_b_ + "/24", "dev", veth_b},
        {"ip", "-n", a_, "link", "set", veth_a, "up"},
        {"ip", "-n", b_, "link", "set", veth_b, "up"},
        {"ip", "-n", a_, "link", "set", "lo", "up"},
        {"ip", "-n", b_, "link", "set", "lo", "up"},
        {"ip", "netns", "exec", a_, "unshare", "--uts", "true"},
    };
    for (const auto& command : setup) {
      const auto r = testing_mp::run_program(command, {30});
      if (r.exit_code != 0)
        GTEST_SKIP() << "cannot make two network namespaces here (a chroot, or no network namespaces): '"
                     << fmt::format("{}", fmt::join(command, " ")) << "' said " << r.err;
    }
  }

  void TearDown() override {
    for (const auto& name : {a_, b_})
      if (!name.empty()) testing_mp::run_program({"ip", "netns", "del", name}, {30});
  }

  // Rank `rank` of two, run in its namespace under a host name of its own.
  std::vector<std::string> rank_args(int rank, const fs::path& out_dir,
                                     const std::vector<std::string>& run) const {
    return testing_mp::with(
        {"ip", "netns", "exec", rank == 0 ? a_ : b_, "unshare", "--uts", "sh", "-c",
         fmt::format("hostname host-{} && exec \"$0\" \"$@\"", rank == 0 ? 'a' : 'b')},
        testing_mp::distributed_args(MP_LESSON_BINARY, out_dir, 2,
                                     testing_mp::with({"--rank", std::to_string(rank), "--master-addr",
                                                       address_a_, "--master-port", "29400"},
                                                      run)));
  }

  // Both ranks at once; options[k] for rank k.
  std::vector<testing_mp::LessonRun> run_both(const fs::path& dir, const std::vector<std::string>& run,
                                              std::vector<testing_mp::RunOptions> options) const {
    std::vector<testing_mp::LessonRun> results(2);
    std::vector<std::thread> ranks;
    ranks.reserve(2);
    for (int rank = 0; rank < 2; ++rank) {
      ranks.emplace_back([&, rank] {
        results[static_cast<size_t>(rank)] =
            testing_mp::run_lesson(rank_args(rank, dir, run), options[static_cast<size_t>(rank)]);
      });
    }
    for (auto& t : ranks) t.join();
    return results;
  }

  std::string a_, b_, address_a_, address_b_;
};

}  // namespace

TEST_F(TwoHosts, TheRunEqualsAOneHostRunBitForBit) {
  const std::vector<std::string> run{"--epochs", "2", "--examples", "512"};
  const auto own = testing_mp::fresh_dir("own");
  ASSERT_EQ(testing_mp::run_lesson(lesson_args(own, 2, run)).exit_code, 0);
  const auto dir = testing_mp::fresh_dir();
  const auto results = run_both(dir, run, {{120}, {120}});
  for (const auto& r : results) ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(results[1].out.find("through the store at " + address_a_ + ":29400"), std::string::npos)
      << results[1].out;
  EXPECT_EQ(testing_mp::read_text(dir / "final.params"), testing_mp::read_text(own / "final.params"));
}

TEST_F(TwoHosts, KillingTheSecondHostsRankEndsTheFirstNamingRankOne) {
  const auto dir = testing_mp::fresh_dir();
  std::chrono::steady_clock::time_point killed_at;
  testing_mp::RunOptions second{120};
  const auto checkpoint = dir / "checkpoints" / common::checkpoint::file_name(128);
  second.watch = [&](pid_t rank_one) {
    std::error_code ec;
    if (!fs::exists(checkpoint, ec)) return false;
    kill(rank_one, SIGKILL);
    killed_at = std::chrono::steady_clock::now();
    return true;
  };
  const auto results = run_both(dir, {"--epochs", "20", "--examples", "8192"}, {{120}, second});
  ASSERT_NE(killed_at, std::chrono::steady_clock::time_point{}) << results[0].err;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_EQ(results[0].exit_code, common::kExitBadInput) << results[0].err;
  // Across hosts the process cannot be looked up; the connection that closed names the rank.
  EXPECT_NE(results[0].err.find("error: rank 0: lost rank 1 (its connection from " + address_b_ +
                                " on host-b closed)"),
            std::string::npos)
      << results[0].err;
  EXPECT_LT(seconds, 15.0) << "the stated bound: --timeout (10 s) plus 5 s";
  std::cout << "rank 0 ended " << seconds << " s after the second host's rank was killed\n";
}
