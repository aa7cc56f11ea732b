// Lesson 11: checkpoints, which the notes recommend in "Archivos de E/S": "guardar periódicamente los
// resultados intermedios (puntos de control) para garantizar que no perdamos varios días de cómputo si
// nos tropezamos con el enchufe de nuestro servidor" ("Modelos Personalizados en PyTorch").
#include <chrono>

#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/weights/state_dict.h"
#include "lessons/11_checkpoints/checkpoints.h"

int main(int argc, char** argv) try {
  const checkpoints::Options options(argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Puntos de control: los datos, el modelo y el optimizador
  // The notes' MLP on a synthetic dataset, trained with SGD and momentum (checkpoints.h).
  const auto& settings = options.settings;
  const auto data = checkpoints::make_dataset(settings.examples, static_cast<uint64_t>(options.seed));
  auto model = checkpoints::make_mlp();
  model->to(options.device);
  auto optimizer = checkpoints::make_optimizer(model, settings.lr);
  lesson.say("{} examples of 20 features in 10 classes, batches of {}, SGD with momentum 0.9, lr {}",
             settings.examples, settings.batch_size, settings.lr);
  const auto checkpoint_dir = lesson.out_dir() / "checkpoints";
  lesson.say("a checkpoint every {} steps in {}, keeping the newest {}", options.checkpoint_every,
             checkpoint_dir.string(), options.keep);

  // %% Puntos de control: retomar desde el último que carga
  // A checkpoint is input like any file: each is checked, and one that does not load (cut short by the very
  // crash we resume from, or lying) is skipped for the one before it.
  if (const int stale = common::checkpoint::open_folder(checkpoint_dir, options.resume); stale > 0)
    lesson.say("removed {} temporary file(s) left by an interrupted run", stale);
  checkpoints::Progress progress;
  std::vector<std::filesystem::path> skipped;
  if (options.resume) {
    const auto resumed =
        common::checkpoint::resume(checkpoint_dir, *model, optimizer, settings, common::print_warning);
    progress = resumed.loaded.progress;
    skipped = resumed.skipped;
    lesson.say("resumed from {}: epoch {}, step {}", resumed.path.filename().string(), progress.epoch + 1,
               progress.step);
  }
  if (progress.epoch >= settings.epochs) {
    lesson.say("the run is already complete: {} of {} epochs done; pass a larger --epochs to train on",
               progress.epoch, settings.epochs);
    return lesson.finish();
  }

  // %% Puntos de control: entrenar guardando cada N pasos
  const checkpoints::LiveLine live;
  auto started = std::chrono::steady_clock::now();
  std::vector<double> losses, accuracies;
  checkpoints::train(
      model, optimizer, data, checkpoints::train_options(options, checkpoint_dir, skipped), progress,
      [&](const checkpoints::EpochReport& r) {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        started = std::chrono::steady_clock::now();
        live.clear();
        lesson.say("Epoch [{}/{}], Loss: {:.4f}, Accuracy: {:.3f}, {:.0f} examples/s", r.epoch + 1,
                   settings.epochs, r.loss, r.accuracy,
                   static_cast<double>(r.examples) / std::max(seconds, 1e-9));
        losses.push_back(r.loss);
        accuracies.push_back(r.accuracy);
      },
      [&](int64_t step, int64_t steps) { live.step(step, steps); });
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
