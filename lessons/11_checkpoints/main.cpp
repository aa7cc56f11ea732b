// Lesson 11: checkpoints, which the notes recommend in "Archivos de E/S": "guardar periódicamente los
// resultados intermedios (puntos de control) para garantizar que no perdamos varios días de cómputo si
// nos tropezamos con el enchufe de nuestro servidor" ("Modelos Personalizados en PyTorch").
#include <unistd.h>

#include <chrono>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/lesson/lesson.h"
#include "common/weights/state_dict.h"
#include "lessons/11_checkpoints/checkpoints.h"

int main(int argc, char** argv) try {
  common::Options options("11_checkpoints", "Checkpoints: train, save as you go, resume bit for bit");
  checkpoints::TrainOptions train_options;
  auto& settings = train_options.settings;
  bool resume = false;
  auto& cli = options.cli();
  common::checkpoint::add_options(cli, settings, "examples per step");
  cli.add_option("--checkpoint-every", train_options.checkpoint_every, "save a checkpoint every N steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000000));
  cli.add_option("--keep", train_options.keep, "keep the newest K checkpoints")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  cli.add_flag("--resume", resume, "continue from the newest checkpoint in --out-dir that loads");
  options.parse(argc, argv);
  torch::manual_seed(options.seed);
  const torch::Device device = options.device;
  common::Lesson lesson(options);
  settings.seed = options.seed;
  const auto checkpoint_dir = train_options.checkpoint_dir = lesson.out_dir() / "checkpoints";

  // %% Puntos de control: los datos, el modelo y el optimizador
  // The notes' MLP on a synthetic dataset, trained with SGD and momentum (checkpoints.h).
  const auto data = checkpoints::make_dataset(settings.examples, static_cast<uint64_t>(options.seed));
  auto model = checkpoints::make_mlp();
  model->to(device);
  auto optimizer = checkpoints::make_optimizer(model, settings.lr);
  lesson.say("{} examples of 20 features in 10 classes, batches of {}, SGD with momentum 0.9, lr {}",
             settings.examples, settings.batch_size, settings.lr);
  lesson.say("a checkpoint every {} steps in {}, keeping the newest {}", train_options.checkpoint_every,
             checkpoint_dir.string(), train_options.keep);

  // %% Puntos de control: retomar desde el último que carga
  // A checkpoint is input like any file: each is checked, and one that does not load (cut short by the very
  // crash we resume from, or lying) is skipped for the one before it.
  if (resume && common::checkpoint::list(checkpoint_dir).empty()) {
    throw std::runtime_error(fmt::format(
        "--resume: no checkpoint in {}; run without --resume to start training", checkpoint_dir.string()));
  }
  common::ensure_writable_dir(checkpoint_dir);
  // A run killed while writing a checkpoint leaves its temporary file; this run clears them.
  if (const int stale = common::remove_stale_temporaries(checkpoint_dir, common::checkpoint::is_file_name);
      stale > 0)
    lesson.say("removed {} temporary file(s) left by an interrupted run", stale);
  checkpoints::Progress progress;
  if (resume) {
    const auto resumed =
        common::checkpoint::resume(checkpoint_dir, *model, optimizer, settings, common::print_warning);
    progress = resumed.loaded.progress;
    train_options.skipped = resumed.skipped;
    lesson.say("resumed from {}: epoch {}, step {}", resumed.path.filename().string(), progress.epoch + 1,
               progress.step);
  }
  if (progress.epoch >= settings.epochs) {
    lesson.say("the run is already complete: {} of {} epochs done; pass a larger --epochs to train on",
               progress.epoch, settings.epochs);
    return lesson.finish();
  }

  // %% Puntos de control: entrenar guardando cada N pasos
  const bool live = isatty(STDOUT_FILENO) != 0;
  auto started = std::chrono::steady_clock::now();
  std::vector<double> losses, accuracies;
  checkpoints::train(
      model, optimizer, data, train_options, progress,
      [&](const checkpoints::EpochReport& r) {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        started = std::chrono::steady_clock::now();
        if (live) fmt::print("\r\033[K");
        lesson.say("Epoch [{}/{}], Loss: {:.4f}, Accuracy: {:.3f}, {:.0f} examples/s", r.epoch + 1,
                   settings.epochs, r.loss, r.accuracy,
                   static_cast<double>(r.examples) / std::max(seconds, 1e-9));
        losses.push_back(r.loss);
        accuracies.push_back(r.accuracy);
      },
      [&](int64_t step, int64_t steps) {
        if (live) {
          fmt::print("\r  step {}/{}", step, steps);
          std::fflush(stdout);
        }
      });
  lesson.show("loss per epoch", losses);
  lesson.show("accuracy per epoch", accuracies);

  // %% Puntos de control: los parámetros finales
  // In Python's torch.save format: torch.load('final.params', weights_only=True) opens it.
  common::save_state_dict(*model, lesson.out_dir() / "final.params");
  lesson.say("trained parameters saved to {}", (lesson.out_dir() / "final.params").string());
  lesson.say("checkpoints kept: {}", common::checkpoint::list(checkpoint_dir).size());

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
