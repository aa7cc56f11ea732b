// Lesson 06: "Gestión de parámetros": "Acceso a parámetros", "Indexado de parámetros", "Todos los
// parámetros a la vez" and "Recopilación de parámetros de bloques anidados" from the notes
// "Modelos Personalizados en PyTorch".
#include <torch/torch.h>

#include "common/lesson.h"
#include "common/params.h"
#include "common/print.h"
#include "lessons/06_parameter_access/parameter_access.h"

using parameter_access::linear_at;

int main(int argc, char** argv) {
  common::LessonApp app("06_parameter_access", "Gestión de parámetros: reaching a model's parameters");
  return app.run(argc, argv, [](common::Lesson& lesson) {
    const auto& device = lesson.device();

    lesson.banner("Gestión de parámetros",
                  "The net of this part: Sequential(Linear(4, 8), ReLU, Linear(8, 1))");
    auto net = parameter_access::make_net();
    net->to(device);
    auto X = torch::rand({2, 4}).to(device);
    lesson.show("out", "net(X)", net->forward(X));

    lesson.banner("Acceso a parámetros", "net[2]: the second Linear, reached by index");
    // net[2] is a type-erased Module; ptr<LinearImpl>(2) (or ->as<Linear>()) gives the typed layer.
    for (const auto& p : net[2]->named_parameters()) {
      lesson.say("  net[2] {:<6} shape {} dtype {}", p.key(), common::format_shape(p.value().sizes()),
                 c10::toString(p.value().scalar_type()));
    }
    lesson.show("layer2_names", "net[2] parameter names", common::parameter_names(*net[2]));

    lesson.banner("Indexado de parámetros", "The bias, its value, and its gradient");
    auto& second = linear_at(net, 2);
    lesson.show("bias", "net[2].bias", second.bias);
    lesson.show("bias_requires_grad", "it is a parameter (requires grad)", second.bias.requires_grad());
    // Python shows None here; in C++ the gradient is an undefined tensor until backward() runs.
    lesson.show("weight_grad_defined", "net[2].weight.grad() defined before backward()",
                second.weight.grad().defined());

    lesson.banner("Todos los parámetros a la vez", "All parameters: of one layer, then of the whole net");
    lesson.show("layer0_names", "net[0] parameter names", common::parameter_names(*net[0]));
    for (const auto& p : net->named_parameters()) {
      lesson.say("  {:<9} shape {}", p.key(), common::format_shape(p.value().sizes()));
    }
    lesson.show("names", "whole net parameter names", common::parameter_names(*net));
    // Python's net.state_dict()['2.bias']; here the name indexes named_parameters().
    auto by_name = net->named_parameters()["2.bias"];
    lesson.show("bias_by_name", "net->named_parameters()[\"2.bias\"]", by_name);
    lesson.say("  same storage as net[2].bias: {}", by_name.data_ptr() == second.bias.data_ptr());

    lesson.banner("Recopilación de parámetros de bloques anidados", "Nested blocks: rgnet");
    auto rgnet = parameter_access::make_rgnet();
    rgnet->to(device);
    lesson.show("rgnet_out", "rgnet(X)", rgnet->forward(X));
    lesson.say("rgnet, printed:\n{}", common::format_module(*rgnet));
    lesson.show("rgnet_names", "rgnet parameter names", common::parameter_names(*rgnet));
    lesson.show("rgnet_bias", "rgnet[0][1][0].bias", parameter_access::nested_bias(rgnet));
  });
}
