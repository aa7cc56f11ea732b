// Lesson 02: "El Bloque Sequential" from the notes "Modelos Personalizados en PyTorch".
#include <torch/torch.h>

#include "common/lesson.h"
#include "common/params.h"
#include "common/print.h"
#include "lessons/02_my_sequential/my_sequential.h"

using my_sequential::MySequential;
using my_sequential::UnregisteredSequential;

int main(int argc, char** argv) {
  common::LessonApp app("02_my_sequential", "El Bloque Sequential: a Sequential of our own");
  return app.run(argc, argv, [](common::Lesson& lesson) {
    const auto& device = lesson.device();

    lesson.banner("El Bloque Sequential", "MySequential: register blocks as children, run them in order");
    auto net = my_sequential::make_mlp();
    net->to(device);
    auto X = torch::rand({2, 20}).to(device);
    auto out = net(X);
    lesson.show("out_shape", "MySequential output shape", out.sizes());
    lesson.show("out", "MySequential output net(X)", out);
    lesson.show("names", "parameter names (as nn::Sequential's)", common::parameter_names(*net));

    // The same weights in LibTorch's own Sequential give the same numbers: MySequential is Sequential.
    auto reference =
        torch::nn::Sequential(torch::nn::Linear(20, 256), torch::nn::ReLU(), torch::nn::Linear(256, 10));
    reference->to(device);
    common::copy_parameters(*net, *reference);
    lesson.show("same_as_sequential", "nn::Sequential with the same weights gives the same output",
                torch::equal(reference->forward(X), out));

    // Registration is what lets the framework reach every layer, for example to initialise them.
    net->apply([](torch::nn::Module& m) {
      if (auto* linear = m.as<torch::nn::Linear>()) {
        torch::NoGradGuard no_grad;
        linear->weight.fill_(0.01);
      }
    });
    lesson.show("init_reached_every_layer", "apply() set every Linear's weight to 0.01",
                net[0]->as<torch::nn::Linear>()->weight.eq(0.01).all().item<bool>() &&
                    net[2]->as<torch::nn::Linear>()->weight.eq(0.01).all().item<bool>());

    lesson.banner("El Bloque Sequential", "What a plain std::vector of blocks loses");
    torch::nn::Linear hidden(20, 256);
    torch::nn::Linear last(256, 10);
    UnregisteredSequential unregistered(hidden, torch::nn::ReLU(), last);
    lesson.say("the unregistered chain still computes: output shape {}",
               common::format_shape(unregistered(X.cpu()).sizes()));
    lesson.show("unregistered_parameters", "parameters() finds",
                static_cast<int64_t>(unregistered->parameters().size()));
    lesson.say("  ...although {} parameter tensors exist, hidden in the vector",
               unregistered->hidden_parameters().size());
    lesson.show(
        "unregistered_state_entries", "entries torch::save would write",
        static_cast<int64_t>(unregistered->named_parameters().size() + unregistered->named_buffers().size()));
    // to() walks registered children only, so on a GPU the hidden layers stay behind on the CPU.
    unregistered->to(device);
    lesson.say("after to({}), the hidden weight is on {}{}", device.str(), hidden->weight.device().str(),
               device.is_cpu() ? " (run with --device cuda to see it left behind)" : ": nothing was moved");
  });
}
