// Outcomes of the distributed lesson: the allreduce sums, averaged gradients keep the ranks equal (and
// without them they drift apart), two ranks end where one process ends, a killed rank stops the others,
// a resume after it ends where an uninterrupted run ends, and bad options are one error line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/lesson/lesson.h"
#include "common/weights/state_dict.h"
#include "lessons/13_distributed/distributed.h"
#include "lessons/13_distributed/launcher.h"
#include "tests/testing.h"

namespace fs = std::filesystem;

namespace {

std::vector<std::string> lesson_args(const fs::path& out_dir, int world_size,
                                     const std::vector<std::string>& extra = {}) {
  return testing_mp::distributed_args(MP_LESSON_BINARY, out_dir, world_size, extra);
}

// The ranks of one process, each on its own thread, in one group: what the lesson's ranks do, in a form
// a test can vary.
std::vector<torch::Tensor> train_in_threads(int world_size, bool average) {
  const auto port = distributed::free_port();
  distributed::Settings s;
  s.examples = 256;
  s.batch_size = 32;
  s.epochs = 1;
  std::vector<torch::Tensor> finals(static_cast<size_t>(world_size));
  std::vector<std::string> errors(static_cast<size_t>(world_size));
  std::vector<std::thread> ranks;
  ranks.reserve(static_cast<size_t>(world_size));
  for (int rank = 0; rank < world_size; ++rank) {
    ranks.emplace_back([&, rank] {
      try {
        distributed::Meeting meeting;
        meeting.port = port;
        auto group = distributed::join(rank, world_size, meeting, std::chrono::seconds(20));
        auto model = common::make_mlp();
        auto optimizer = common::make_optimizer(model, s.lr);
        distributed::broadcast_parameters(group, *model);
        const auto data = common::make_dataset(s.examples, 0);
        auto shuffle = at::detail::createCPUGenerator(0);
        const auto order = torch::randperm(s.examples, shuffle, torch::kLong);
        distributed::train_epoch(group, model, optimizer, data, s, order, 0, average);
        finals[static_cast<size_t>(rank)] = distributed::flat(model->parameters()).detach().clone();
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(rank)] = e.what();
      }
    });
  }
  for (auto& t : ranks) t.join();
  for (const auto& e : errors) {
    if (!e.empty()) throw std::runtime_error(e);
  }
  return finals;
}

}  // namespace

TEST(Distributed, AllreduceGivesTheSumOnEveryRank) {
  const auto dir = testing_mp::fresh_dir();
  const auto r = testing_mp::run_lesson(
      lesson_args(dir, 3, {"--epochs", "1", "--examples", "96", "--batch-size", "48"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Rank k brings [k + 1, 10 (k + 1)]: the sum over 3 ranks is [6, 60], on every rank.
  for (const auto& rank_dir : {dir, dir / "rank-1", dir / "rank-2"}) {
    const auto values = testing_mp::read_values(rank_dir);
    EXPECT_EQ(values["allreduce(SUM) of [k + 1, 10 (k + 1)]"]["values"], nlohmann::json::parse("[6.0, 60.0]"))
        << rank_dir;
  }
  EXPECT_EQ(testing_mp::read_values(dir / "rank-2")["rank"], 2);
}

TEST(Distributed, ParametersAreEqualOnEveryRankAfterTrainingAndDifferedBeforeTheBroadcast) {
  const auto dir = testing_mp::fresh_dir();
  const auto r = testing_mp::run_lesson(lesson_args(dir, 2, {"--epochs", "2", "--examples", "256"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const auto& rank_dir : {dir, dir / "rank-1"}) {
    const auto values = testing_mp::read_values(rank_dir);
    EXPECT_EQ(values["parameters equal on every rank before the broadcast"], false);  // the check can say no
    EXPECT_EQ(values["parameters equal on every rank at the end"], true);
  }
}

TEST(Distributed, WithoutTheGradientAllreduceTheRanksDriftApart) {
  const auto averaged = train_in_threads(2, true);
  EXPECT_TRUE(torch::equal(averaged[0], averaged[1]));
  const auto alone = train_in_threads(2, false);
  EXPECT_FALSE(torch::equal(alone[0], alone[1])) << "the ranks' shards differ, so must their steps";
}

// Two ranks with half a batch each take the same steps as one process with the whole batch, up to the order
// in which float32 sums are taken: cross_entropy's mean over 32 examples per rank, then the average of
// two, against one mean over 64. Measured: the largest difference after 3 epochs (96 steps) is 1.5e-7
// (about one float32 rounding of the weights' size); the bound is 1e-5 absolute plus 1e-4 relative.
TEST(Distributed, TwoRanksEndWhereOneProcessEnds) {
  const auto one = testing_mp::fresh_dir("one");
  const auto two = testing_mp::fresh_dir("two");
  ASSERT_EQ(testing_mp::run_lesson(lesson_args(one, 1)).exit_code, 0);
  ASSERT_EQ(testing_mp::run_lesson(lesson_args(two, 2)).exit_code, 0);
  const auto a = common::read_state_dict(one / "final.params");
  const auto b = common::read_state_dict(two / "final.params");
  ASSERT_EQ(a.size(), b.size());
  double largest = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    largest = std::max(largest, (a[i].second - b[i].second).abs().max().item<double>());
    EXPECT_TRUE(torch::allclose(a[i].second, b[i].second, 1e-4, 1e-5)) << a[i].first;
  }
  std::cout << "largest difference between world sizes 1 and 2: " << largest << "\n";
  // And a different seed lands elsewhere: the comparison can fail.
  const auto other = testing_mp::fresh_dir("other");
  ASSERT_EQ(testing_mp::run_lesson(lesson_args(other, 2, {"--seed", "1"})).exit_code, 0);
  EXPECT_FALSE(
      torch::allclose(common::read_state_dict(other / "final.params")[0].second, a[0].second, 1e-4, 1e-5));
}

namespace {

struct KillResult {
  int exit_code = -1;
  double seconds_after_kill = 0;
  std::string err;
};

// Starts the lesson, waits until rank 0 has written the checkpoint after epoch 1, kills rank 1 with SIGKILL
// from outside, and waits for the launcher.
KillResult kill_rank_one_after_first_epoch(const std::vector<std::string>& args, const fs::path& dir) {
  // 8192 examples in global batches of 64: the checkpoint after epoch 1 is the one of step 128.
  const auto checkpoint = dir / "checkpoints" / common::checkpoint::file_name(128);
  std::optional<std::chrono::steady_clock::time_point> killed_at;
  testing_mp::RunOptions options;
  options.timeout_seconds = 180;
  options.watch = [&](pid_t launcher) {
    std::error_code ec;
    if (!fs::exists(checkpoint, ec)) return false;
    // Rank 1 is the launcher's child started with "--rank 1".
    const pid_t rank_one = testing_mp::child_of(launcher, [](const std::string& cmdline, const std::string&) {
      return cmdline.find(std::string("--rank\0"
                                      "1\0",
                                      9)) != std::string::npos;
    });
    if (rank_one == 0) return false;
    kill(rank_one, SIGKILL);
    killed_at = std::chrono::steady_clock::now();
    return true;
  };
  const auto run = testing_mp::run_lesson(args, options);
  KillResult result;
  if (!killed_at) {
    result.err = "rank 1 was not killed: " + run.err;
    return result;
  }
  result.seconds_after_kill =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - *killed_at).count();
  result.exit_code = run.exit_code;
  result.err = run.err;
  return result;
}

}  // namespace

// 8192 examples in batches of 64: 128 steps an epoch, so the kill lands in the middle of training.
TEST(Distributed, KillingARankEndsTheOthersWithAnErrorNamingItAndExitTwo) {
  const auto dir = testing_mp::fresh_dir();
  const auto r =
      kill_rank_one_after_first_epoch(lesson_args(dir, 2, {"--epochs", "20", "--examples", "8192"}), dir);
  EXPECT_EQ(r.exit_code, common::kExitBadInput) << r.err;
  // The stated bound: rank 0 notices at once (the socket closes); the launcher kills what is left after
  // --timeout (10 s) plus 5 s.
  EXPECT_LT(r.seconds_after_kill, 15.0) << r.err;
  std::cout << "the launcher ended " << r.seconds_after_kill << " s after rank 1 was killed\n";
  // One line: the cause, then what it made the other rank do.
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("error: rank 1 was killed by signal 9 (Killed); then rank 0: lost rank 1", 0), 0u)
      << r.err;
  EXPECT_FALSE(fs::exists(dir / "final.params"));
}

TEST(Distributed, ResumeAfterAKilledRankEndsWhereAnUninterruptedRunEnds) {
  const std::vector<std::string> run{"--epochs", "4", "--examples", "8192"};
  const auto reference = testing_mp::fresh_dir("reference");
  ASSERT_EQ(testing_mp::run_lesson(lesson_args(reference, 2, run)).exit_code, 0);
  const auto dir = testing_mp::fresh_dir();
  const auto killed = kill_rank_one_after_first_epoch(lesson_args(dir, 2, run), dir);
  ASSERT_EQ(killed.exit_code, common::kExitBadInput) << killed.err;
  ASSERT_FALSE(fs::exists(dir / "final.params"));
  const auto resumed = testing_mp::run_lesson(testing_mp::with(lesson_args(dir, 2, run), {"--resume"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("resumed from rank 0's checkpoint: epoch 2, step 128"), std::string::npos)
      << resumed.out;
  const auto a = common::read_state_dict(reference / "final.params");
  const auto b = common::read_state_dict(dir / "final.params");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(testing_mp::tensors_equal(b[i].second, a[i].second)) << a[i].first;
}

// A rank that refuses (here rank 0: no checkpoint loads) makes the others fail too, as their connection to
// it closes; the learner sees one line, the cause, and the warning that named the damaged file.
TEST(Distributed, ARankThatRefusesIsOneErrorLineNamingTheCause) {
  const auto dir = testing_mp::fresh_dir();
  fs::create_directories(dir / "checkpoints");
  std::ofstream(dir / "checkpoints" / common::checkpoint::file_name(4)) << "not a checkpoint";
  for (const char* world_size : {"2", "4"}) {
    auto args = lesson_args(dir, std::stoi(world_size), {"--resume"});
    const auto r = testing_mp::run_lesson(args, {60});
    EXPECT_EQ(r.exit_code, common::kExitBadInput) << r.err;
    std::vector<std::string> errors;
    std::istringstream lines(r.err);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("warning: ", 0) != 0) errors.push_back(line);
    ASSERT_EQ(errors.size(), 1u) << r.err;
    EXPECT_EQ(errors[0].rfind("error: --resume: none of the 1 checkpoints in ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("warning: skipping checkpoint-00000004.pt"), std::string::npos) << r.err;
  }
}

TEST(Distributed, BadOptionsAreOneErrorLineAndExitTwo) {
  // A port held by someone else.
  const int held = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(distributed::free_port());
  ASSERT_EQ(bind(held, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(held, 1), 0);
  const auto port = std::to_string(ntohs(addr.sin_port));
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--world-size", "0"}, "--world-size"},
      {{"--world-size", "9"}, "--world-size"},
      {{"--master-port", port}, "port " + port + " on 127.0.0.1 is in use"},
      {{"--device", "cuda"}, "cuda"},
      {{"--batch-size", "63"}, "does not split evenly over 2 ranks"},
      {{"--rank", "2"}, "--rank 2 is not below --world-size 2"},
      {{"--rank", "0"}, "pass the --master-port"},
      {{"--resume"}, "no checkpoint"},
  };
  for (const auto& [extra, expected] : cases) {
    const auto dir = testing_mp::fresh_dir();
    const auto r =
        testing_mp::run_lesson(testing_mp::with({MP_LESSON_BINARY, "--out-dir", dir.string()}, extra), {30});
    EXPECT_EQ(r.exit_code, common::kExitBadInput) << extra[0] << ": " << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  }
  close(held);
}
