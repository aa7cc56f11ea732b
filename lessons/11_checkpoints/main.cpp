// Lesson 11: checkpoints, which the notes recommend in "Archivos de E/S": "guardar periódicamente los
// resultados intermedios (puntos de control) para garantizar que no perdamos varios días de cómputo si
// nos tropezamos con el enchufe de nuestro servidor" ("Modelos Personalizados en PyTorch").
#include <unistd.h>

#include <chrono>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/lesson.h"
#include "common/serialize.h"
#include "lessons/11_checkpoints/checkpoints.h"

int main(int argc, char** argv) {
  common::LessonApp app("11_checkpoints", "Checkpoints: train, save as you go, resume bit for bit");
  checkpoints::TrainOptions options;
  auto& settings = options.settings;
  bool resume = false;
  auto& cli = app.cli();
  cli.add_option("--epochs", settings.epochs, "epochs to train")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cli.add_option("--checkpoint-every", options.checkpoint_every, "save a checkpoint every N steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000000));
  cli.add_option("--keep", options.keep, "keep the newest K checkpoints")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  cli.add_option("--batch-size", settings.batch_size, "examples per step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  cli.add_option("--examples", settings.examples, "size of the synthetic dataset")
      ->capture_default_str()
      ->check(CLI::Range(10, 100000000));
  cli.add_option("--lr", settings.lr, "learning rate of SGD")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 10.0));
  cli.add_flag("--resume", resume, "continue from the newest checkpoint in --out-dir that loads");
  // For the tests: kill the process with SIGKILL after this step, as a pulled plug would.
  cli.add_option("--kill-at-step", options.kill_at_step)->group("");

  return app.run(argc, argv, [&](common::Lesson& lesson) {
    const auto& device = lesson.device();
    settings.seed = lesson.seed();
    options.checkpoint_dir = lesson.out_dir() / "checkpoints";
    // Checked before anything is created, so a mistaken --resume leaves the disk as it was.
    if (resume && checkpoints::list_checkpoints(options.checkpoint_dir).empty()) {
      throw std::runtime_error(
          fmt::format("--resume: no checkpoint in {}; run without --resume to start training",
                      options.checkpoint_dir.string()));
    }
    common::ensure_writable_dir(options.checkpoint_dir);
    // A run killed while writing a checkpoint leaves its temporary file; this run clears them.
    if (const int stale = common::remove_stale_temporaries(options.checkpoint_dir); stale > 0)
      lesson.say("removed {} temporary file(s) left by an interrupted run", stale);

    lesson.banner("Archivos de E/S", "Puntos de control: checkpoints while training the notes' MLP");
    const auto data = checkpoints::make_dataset(settings.examples, static_cast<uint64_t>(lesson.seed()));
    auto model = checkpoints::make_mlp();
    model->to(device);
    auto optimizer = checkpoints::make_optimizer(model, settings.lr);
    lesson.say("{} examples of 20 features in 10 classes, batches of {}, SGD with momentum 0.9, lr {}",
               settings.examples, settings.batch_size, settings.lr);
    lesson.say("a checkpoint every {} steps in {}, keeping the newest {}", options.checkpoint_every,
               options.checkpoint_dir.string(), options.keep);

    checkpoints::Progress progress;
    if (resume) {
      const auto warn = [](const std::string& what) { common::print_warning(what); };
      const auto found = checkpoints::list_checkpoints(options.checkpoint_dir, warn);
      bool loaded = false;
      for (const auto& path : found) {
        try {
          progress = checkpoints::load_checkpoint(path, *model, optimizer, &settings).progress;
          lesson.say("resumed from {}: epoch {}, step {}", path.filename().string(), progress.epoch + 1,
                     progress.step);
          loaded = true;
          break;
        } catch (const checkpoints::SettingsMismatch&) {
          throw;
        } catch (const std::exception& e) {
          // A checkpoint cut short by the very crash we resume from: fall back to the one before.
          common::print_warning(
              fmt::format("skipping {}: {}", path.filename().string(), common::one_line_message(e)));
        }
      }
      if (!loaded) {
        throw std::runtime_error(fmt::format("--resume: none of the {} checkpoints in {} loads", found.size(),
                                             options.checkpoint_dir.string()));
      }
    }

    if (progress.epoch >= options.settings.epochs) {
      lesson.say("the run is already complete: {} of {} epochs done; pass a larger --epochs to train on",
                 progress.epoch, options.settings.epochs);
      return;
    }

    const bool live = isatty(STDOUT_FILENO) != 0;
    auto started = std::chrono::steady_clock::now();
    checkpoints::train(
        model, optimizer, data, options, progress,
        [&](const checkpoints::EpochReport& r) {
          const double seconds =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
          started = std::chrono::steady_clock::now();
          if (live) fmt::print("\r\033[K");
          lesson.say("Epoch [{}/{}], Loss: {:.4f}, Accuracy: {:.3f}, {:.0f} examples/s", r.epoch + 1,
                     options.settings.epochs, r.loss, r.accuracy,
                     static_cast<double>(r.examples) / std::max(seconds, 1e-9));
        },
        [&](int64_t step, int64_t steps) {
          if (live) {
            fmt::print("\r  step {}/{}", step, steps);
            std::fflush(stdout);
          }
        });

    common::save_state_dict(*model, lesson.out_dir() / "final.params");
    lesson.say("trained parameters saved to {}", (lesson.out_dir() / "final.params").string());
    lesson.say("checkpoints kept: {}", checkpoints::list_checkpoints(options.checkpoint_dir).size());
  });
}
