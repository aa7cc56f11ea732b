// Lesson 01: "Bloques" and "Un bloque personalizado" from the notes "Modelos Personalizados en PyTorch".
#include <torch/torch.h>

#include "common/lesson.h"
#include "common/params.h"
#include "common/print.h"
#include "lessons/01_blocks/blocks.h"

int main(int argc, char** argv) {
  common::LessonApp app("01_blocks", "Bloques: a Sequential MLP and the same MLP as a block of our own");
  return app.run(argc, argv, [](common::Lesson& lesson) {
    const auto& device = lesson.device();

    lesson.banner("Bloques", "Blocks: nn::Sequential chains layers in the order they are given");
    auto net = blocks::make_sequential_mlp();
    net->to(device);
    // The input is drawn after the layers, as in the notebook, so the numbers match Python's.
    auto X = torch::rand({2, 20}).to(device);
    lesson.show("X_shape", "input X shape", X.sizes());
    auto sequential_out = net->forward(X);
    lesson.show("sequential_out_shape", "Sequential output shape", sequential_out.sizes());
    lesson.show("sequential_out", "Sequential output net(X)", sequential_out);
    lesson.show("sequential_names", "Sequential parameter names", common::parameter_names(*net));

    lesson.banner("Un bloque personalizado", "A custom block: MLPImpl + TORCH_MODULE(MLP)");
    blocks::MLP mlp;
    mlp->to(device);
    auto mlp_out = mlp(X);
    lesson.show("mlp_out_shape", "MLP output shape", mlp_out.sizes());
    lesson.show("mlp_out", "MLP output net(X)", mlp_out);
    for (const auto& p : mlp->named_parameters()) {
      lesson.say("  parameter {:<14} shape {}", p.key(), common::format_shape(p.value().sizes()));
    }
    lesson.show("mlp_names", "MLP parameter names", common::parameter_names(*mlp));
    lesson.show("mlp_parameter_count", "MLP parameter count", common::count_parameters(*mlp));

    // In Python net(X) is shorthand for net.__call__(X); in C++ the module holder's operator() forwards
    // to forward().
    lesson.show("call_equals_forward", "net(X) equals net->forward(X)",
                torch::equal(mlp(X), mlp->forward(X)));

    // Each instance owns its layers, so two MLPs are two different models.
    blocks::MLP mlp2;
    mlp2->to(device);
    lesson.show("two_instances_differ", "a second MLP gives a different output",
                !torch::equal(mlp(X), mlp2(X)));
  });
}
