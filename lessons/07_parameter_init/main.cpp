// Lesson 07: "Inicialización de parámetros", "Inicialización integrada" and "Inicialización
// personalizada" from the notes "Modelos Personalizados en PyTorch".
#include <torch/torch.h>

#include "common/lesson.h"
#include "common/print.h"
#include "lessons/07_parameter_init/parameter_init.h"

using namespace parameter_init;

int main(int argc, char** argv) {
  common::LessonApp app("07_parameter_init",
                        "Inicialización de parámetros: built-in and custom initialisers");
  return app.run(argc, argv, [](common::Lesson& lesson) {
    const auto& device = lesson.device();
    auto net = make_net();
    net->to(device);
    auto& first = *net->ptr<torch::nn::LinearImpl>(0);
    auto& last = *net->ptr<torch::nn::LinearImpl>(2);

    lesson.banner("Inicialización de parámetros", "LibTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))");
    lesson.show("default_weight0", "net[0].weight[0]", first.weight[0]);

    lesson.banner("Inicialización integrada", "Built-in initialisers, applied with net->apply()");
    net->apply(init_normal);
    lesson.show("normal_weight0", "after init_normal: net[0].weight[0]", first.weight[0]);
    lesson.show("normal_bias0", "after init_normal: net[0].bias[0]", first.bias[0]);
    net->apply(init_constant);
    lesson.show("constant_weight0", "after init_constant: net[0].weight[0]", first.weight[0]);
    lesson.show("constant_bias0", "after init_constant: net[0].bias[0]", first.bias[0]);
    // Different initialisers for different blocks: apply() on one layer reaches only that layer.
    net[0]->apply(init_xavier);
    net[2]->apply(init_42);
    lesson.show("xavier_weight0", "Xavier on net[0]: net[0].weight[0]", first.weight[0]);
    lesson.say("  (bound sqrt(6 / (4 + 8)) = {:.4f})", xavier_bound(first));
    lesson.show("const42_weight", "42 on net[2]: net[2].weight", last.weight);

    lesson.banner("Inicialización personalizada", "my_init: U(-10, 10), then zero where |w| < 5");
    for (const auto& p : net->named_parameters()) {
      if (p.key().find("weight") != std::string::npos) {
        lesson.say("Init {} {}", p.key(), common::format_shape(p.value().sizes()));
      }
    }
    net->apply(my_init);
    lesson.show("my_init_weight_rows", "net[0].weight[:2]", first.weight.slice(0, 0, 2));

    // Parameters can always be set by hand, outside autograd.
    {
      torch::NoGradGuard no_grad;
      first.weight.add_(1);
      first.weight[0][0] = 42;
    }
    lesson.show("direct_weight0", "after weight += 1 and weight[0][0] = 42: net[0].weight[0]",
                first.weight[0]);

    lesson.banner("Inicialización personalizada",
                  "What each scheme looks like: a Linear(100, 100)'s weights");
    torch::nn::Linear wide(100, 100);
    wide->to(device);
    lesson.say("LibTorch's default, U(-0.1, 0.1): a box\n{}", common::format_histogram(wide->weight));
    wide->apply(init_normal);
    lesson.say("init_normal, N(0, 0.01²): a bell\n{}", common::format_histogram(wide->weight));
    wide->apply(init_xavier);
    lesson.say("init_xavier, U(-{:.3f}, {:.3f}): a wider box\n{}", xavier_bound(*wide), xavier_bound(*wide),
               common::format_histogram(wide->weight));
    wide->apply(my_init);
    lesson.say("my_init: a spike at 0 and nothing in (-5, 5) around it\n{}",
               common::format_histogram(wide->weight));
  });
}
