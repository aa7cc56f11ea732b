// Lesson 08: "Parámetros vinculados" from the notes "Modelos Personalizados en PyTorch".
#include <torch/torch.h>

#include "common/lesson.h"
#include "common/params.h"
#include "lessons/08_tied_parameters/tied_parameters.h"

using tied_parameters::layer;

int main(int argc, char** argv) {
  common::LessonApp app("08_tied_parameters", "Parámetros vinculados: one layer used twice");
  return app.run(argc, argv, [](common::Lesson& lesson) {
    const auto& device = lesson.device();

    lesson.banner("Parámetros vinculados", "shared = Linear(8, 8), placed at positions 2 and 4");
    auto net = tied_parameters::make_tied_net();
    net->to(device);
    auto X = torch::rand({2, 4}).to(device);
    lesson.show("out", "net(X)", net->forward(X));
    lesson.show("rows_equal", "net[2].weight[0] == net[4].weight[0]",
                layer(net, 2).weight[0] == layer(net, 4).weight[0]);
    {
      torch::NoGradGuard no_grad;
      layer(net, 2).weight[0][0] = 100;
    }
    // Not two equal tensors but one: the write through position 2 shows at position 4.
    lesson.show("rows_equal_after_write",
                "after net[2].weight[0][0] = 100, net[2].weight[0] == net[4].weight[0]",
                layer(net, 2).weight[0] == layer(net, 4).weight[0]);
    lesson.show("same_tensor", "positions 2 and 4 hold the same tensor",
                layer(net, 2).weight.unsafeGetTensorImpl() == layer(net, 4).weight.unsafeGetTensorImpl());

    lesson.banner("Parámetros vinculados", "Where C++ differs: parameters() lists the shared weight twice");
    lesson.show("parameters_count", "net->parameters().size() (Python: 6)",
                static_cast<int64_t>(net->parameters().size()));
    lesson.show("unique_parameters_count", "common::unique_parameters(*net).size()",
                static_cast<int64_t>(common::unique_parameters(*net).size()));
    lesson.show("names", "named_parameters() names", common::parameter_names(*net));
    std::vector<std::string> unique_names;
    for (const auto& [name, tensor] : common::unique_named_parameters(*net)) unique_names.push_back(name);
    lesson.show("unique_names", "unique_named_parameters() names (as Python's)", unique_names);

    // The gradients of the two uses add up in the one tensor. An optimizer built from parameters()
    // holds that tensor twice and so applies the summed gradient twice.
    const double lr = 0.1;
    net->zero_grad();
    net->forward(X).sum().backward();
    auto grad = layer(net, 2).weight.grad().clone();
    auto before = layer(net, 2).weight.clone();
    torch::optim::SGD twice(net->parameters(), torch::optim::SGDOptions(lr));
    twice.step();
    auto step_twice = (before - layer(net, 2).weight).div(lr * grad).nanmean();
    {
      torch::NoGradGuard no_grad;
      layer(net, 2).weight.copy_(before);
    }
    torch::optim::SGD once(common::unique_parameters(*net), torch::optim::SGDOptions(lr));
    once.step();
    auto step_once = (before - layer(net, 2).weight).div(lr * grad).nanmean();
    lesson.say("SGD from parameters(): the shared weight moved {:.3f} x lr x grad",
               step_twice.item<double>());
    lesson.say("SGD from unique_parameters(): it moved {:.3f} x lr x grad, as in Python",
               step_once.item<double>());
  });
}
