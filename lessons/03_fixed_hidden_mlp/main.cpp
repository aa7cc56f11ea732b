// Lesson 03: "Ejecutando código en la función de propagación directa" from the notes
// "Modelos Personalizados en PyTorch".
#include <torch/torch.h>

#include "common/lesson.h"
#include "common/params.h"
#include "common/print.h"
#include "lessons/03_fixed_hidden_mlp/fixed_hidden_mlp.h"

int main(int argc, char** argv) {
  common::LessonApp app("03_fixed_hidden_mlp", "Code in forward: a constant weight, a reused layer, a loop");
  return app.run(argc, argv, [](common::Lesson& lesson) {
    const auto& device = lesson.device();
    auto X = torch::rand({2, 20}).to(device);

    lesson.banner("Ejecutando código en la función de propagación directa",
                  "FixedHiddenMLP: a constant weight, a layer used twice, a while loop");
    fixed_hidden_mlp::FixedHiddenMLP net;
    net->to(device);
    auto out = net(X);
    lesson.show("out", "FixedHiddenMLP output net(X) (a 0-dim tensor)", out);
    lesson.show("out_dim", "output dimensions", out.dim());
    lesson.show("names", "parameters (rand_weight is not one)", common::parameter_names(*net));
    lesson.say("rand_weight: a buffer of shape {} on {}, requires grad: {}",
               common::format_shape(net->rand_weight.sizes()), net->rand_weight.device().str(),
               net->rand_weight.requires_grad());

    // Training moves linear, never the constant.
    auto rand_weight_before = net->rand_weight.clone();
    auto linear_before = net->linear->weight.clone();
    torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
    net(X).backward();
    sgd.step();
    lesson.say("after one SGD step: rand_weight unchanged: {}, linear.weight changed: {}",
               torch::equal(net->rand_weight, rand_weight_before),
               !torch::equal(net->linear->weight, linear_before));

    lesson.banner("Ejecutando código en la función de propagación directa",
                  "Mixing blocks: NestMLP inside a Sequential with FixedHiddenMLP");
    auto chimera = fixed_hidden_mlp::make_chimera();
    chimera->to(device);
    auto chimera_out = chimera->forward(X);
    lesson.show("chimera_out", "chimera(X)", chimera_out);
    lesson.show("chimera_names", "chimera parameter names", common::parameter_names(*chimera));
  });
}
