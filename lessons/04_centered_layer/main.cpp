// Lesson 04: "Capas sin Parámetros" from the notes "Modelos Personalizados en PyTorch".
#include <torch/torch.h>

#include "common/lesson.h"
#include "common/params.h"
#include "lessons/04_centered_layer/centered_layer.h"

int main(int argc, char** argv) {
  common::LessonApp app("04_centered_layer", "Capas sin Parámetros: a layer with no parameters");
  return app.run(argc, argv, [](common::Lesson& lesson) {
    const auto& device = lesson.device();

    lesson.banner("Capas sin Parámetros", "CenteredLayer subtracts the mean of its input");
    centered_layer::CenteredLayer layer;
    auto centered = layer(torch::tensor({1.0F, 2.0F, 3.0F, 4.0F, 5.0F}, device));
    lesson.show("centered", "CenteredLayer()([1, 2, 3, 4, 5])", centered);
    lesson.show("layer_parameters", "parameters it owns", static_cast<int64_t>(layer->parameters().size()));

    lesson.banner("Capas sin Parámetros",
                  "The layer inside a model: Sequential(Linear(8, 128), CenteredLayer)");
    auto net = centered_layer::make_net();
    net->to(device);
    auto Y = net->forward(torch::rand({4, 8}).to(device));
    lesson.show("Y_shape", "output shape", Y.sizes());
    // Zero up to float32 rounding, as the notes say: a tiny number, not exactly 0.
    lesson.show("Y_mean", "Y.mean()", Y.mean());
    lesson.show("names", "parameters of the whole net (only the Linear's)", common::parameter_names(*net));
  });
}
