// Lesson 14: a model from Python, run from C++ without writing its class again. The notes save parameters
// only, because "los propios modelos pueden contener código arbitrario, por lo que no se pueden serializar
// de forma natural"; torch.export captures the computation as a graph instead, and AOTInductor compiles the
// graph into a package that C++ runs ("Archivos de E/S", "Modelos Personalizados en PyTorch").
#include <filesystem>
#include <string>
#include <tuple>

#include <fmt/format.h>
#include <torch/torch.h>

#include "common/lesson/device.h"
#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "common/weights/state_dict.h"
#include "lessons/09_file_io/file_io.h"
#include "lessons/12_custom_operator/custom_operator.h"
#include "lessons/14_export/export.h"
#include "lessons/14_export/packages.h"

namespace ex = export_lesson;

int main(int argc, char** argv) try {
  const ex::Options options(argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Exportar el MLP: un grafo, con el lote como dimensión dinámica
  // torch.export ran in Python, on lesson 09's MLP: its graph is in the twin's output. C++ starts from the
  // inputs and the eager output the twin recorded.
  const auto& recorded = options.recorded;
  const std::filesystem::path dir = options.package_dir;
  const auto& X = recorded.X;
  lesson.show("Y = net(X)", recorded.Y);
  lesson.say("exported by PyTorch {} (Python), seed {}, batch dimension dynamic from {} to {}",
             recorded.torch_version, recorded.seed, ex::kMinBatch, ex::kMaxBatch);

  // %% Compilar con AOTInductor: un paquete .pt2
  ex::Package mlp(dir / "mlp.pt2", MP_MLP_PACKAGE_SHA1);
  lesson.show("the package was compiled for", mlp.device());
  const torch::Device device = ex::package_device(mlp, dir / "mlp.pt2", options);

  // %% Ejecutar el paquete desde C++
  // torch::inductor::AOTIModelPackageLoader runs the graph: no Python, no class written in C++.
  for (const auto& [name, inputs, expected] :
       {std::tuple{"X", X, recorded.Y}, std::tuple{"X1", recorded.X1, recorded.Y1},
        std::tuple{"X64", recorded.X64, recorded.Y64}}) {
    const auto out = mlp.run({inputs.to(device)})[0].cpu();
    lesson.show(fmt::format("package({})", name), out);
    lesson.show(fmt::format("package({}) equals Python's eager output (rtol 1e-5, atol 1e-5)", name),
                ex::matches(out, expected));
    lesson.say("largest difference from Python's eager output: {:.1e}",
               (out - expected).abs().max().item<double>());
  }
  if (!options.input.empty())
    lesson.say("package({}) = {}", options.input,
               common::format_tensor(mlp.run({ex::read_input(options.input).to(device)})[0].cpu()));

  // %% La manera de la lección 09: la clase escrita otra vez y el state dict
  // The notes' answer: the architecture is code, written again in C++ (lesson 09's class), and only the
  // parameters travel, read as data.
  file_io::MLP clone;
  common::load_state_dict(*clone, dir / "mlp.params");
  clone->eval();
  const auto Y_clone = clone->forward(X);
  lesson.show("Y_clone == Y", (Y_clone == recorded.Y).all().item<bool>());

  // %% Lo que export no puede capturar: el bucle de FixedHiddenMLP
  // FixedHiddenMLP loops while X.abs().sum() > 1: how often depends on the data, and a graph has no such
  // loop. What torch.export said, in Python at build time:
  lesson.show("torch.export says", recorded.export_says);
  // The form that exports: 128 halvings, each kept only where the sum still exceeds 1 (the twin says why
  // 128 is enough for every finite float32 X).
  ex::Package bounded(dir / "fixed_hidden_mlp.pt2", MP_FIXED_PACKAGE_SHA1);
  const auto out = bounded.run({recorded.X_fixed.to(device)})[0].cpu();
  lesson.show("bounded package(X)", out);
  lesson.show("bounded package(X) equals the while loop's output (rtol 1e-5, atol 1e-5)",
              ex::matches(out, recorded.Y_fixed));

  // %% El operador de la lección 12 dentro de un paquete
  // The package calls modelos::linear_relu by name, through the dispatcher: lesson 12's library, which this
  // lesson links, registered it when it was loaded. Without it the package could not run.
  lesson.say("modelos::linear_relu registered by {}", custom_operator::library_path());
  ex::Package fused(dir / "fused_mlp.pt2", MP_FUSED_PACKAGE_SHA1);
  const auto fused_out = fused.run({X.to(device)})[0].cpu();
  lesson.show("fused package(X)", fused_out);
  lesson.show("fused package(X) equals Python's eager output (rtol 1e-5, atol 1e-5)",
              ex::matches(fused_out, recorded.Y));

  // %% Un paquete es código: solo el que hizo esta compilación
  lesson.say(
      "A .pt2 holds compiled native code that the loader maps and runs, so a package from elsewhere is "
      "as unsafe as torch::load of a TorchScript file: this lesson ran only the packages its build made, "
      "checked by SHA-1 before loading.");

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
