// Lesson 05: "Capas con parámetros" from the notes "Modelos Personalizados en PyTorch".
#include <torch/torch.h>

#include "common/lesson.h"
#include "common/params.h"
#include "lessons/05_my_linear/my_linear.h"

int main(int argc, char** argv) {
  common::LessonApp app("05_my_linear", "Capas con parámetros: a dense layer of our own");
  return app.run(argc, argv, [](common::Lesson& lesson) {
    const auto& device = lesson.device();

    lesson.banner("Capas con parámetros", "MyLinear(5, 3): weight and bias registered as parameters");
    my_linear::MyLinear linear(5, 3);
    linear->to(device);
    lesson.show("weight", "linear.weight", linear->weight);
    lesson.show("names", "parameter names", common::parameter_names(*linear));
    auto out = linear(torch::rand({2, 5}).to(device));
    lesson.show("out", "linear(rand(2, 5)) (ReLU: never negative)", out);

    lesson.banner("Capas con parámetros",
                  "Models from custom layers: Sequential(MyLinear(64, 8), MyLinear(8, 1))");
    auto net = my_linear::make_net();
    net->to(device);
    auto net_out = net->forward(torch::rand({2, 64}).to(device));
    lesson.show("net_out", "net(rand(2, 64))", net_out);

    lesson.banner("Capas con parámetros", "The porting slip: weight.data() inside forward");
    // A layer that reads weight.data() computes the same numbers but is cut out of autograd.
    my_linear::DetachedLinear detached(5, 3);
    detached->to(device);
    auto input = torch::rand({2, 5}).to(device);
    auto detached_out = detached(input);
    lesson.say("output requires grad through .data(): {} (backward() would fail: nothing to train)",
               detached_out.requires_grad());
    linear(input).sum().backward();
    lesson.say("through the parameters themselves, weight.grad is defined: {}",
               linear->weight.grad().defined());
  });
}
