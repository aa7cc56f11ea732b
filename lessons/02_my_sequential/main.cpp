// Lesson 02: "El Bloque Sequential" from the notes "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/02_my_sequential.py holds the same cells in Python.
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/params.h"
#include "common/lesson/print.h"
#include "lessons/02_my_sequential/my_sequential.h"

int main(int argc, char** argv) try {
  const common::Options options("02_my_sequential", my_sequential::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% El Bloque Sequential: la clase MySequential
  // The class is my_sequential::MySequential in my_sequential.h: push_back registers each block as the
  // child "0", "1", "2", ... (Python's self._modules[str(idx)]), and forward runs them in that order.
  using my_sequential::MySequential;

  // %% El Bloque Sequential: net = MySequential(...)
  torch::nn::Linear hidden(20, 256);
  torch::nn::Linear out(256, 10);
  MySequential net(hidden, torch::nn::ReLU(), out);
  net->to(options.device);
  auto X = torch::rand({2, 20}).to(options.device);
  lesson.show("net(X)", net(X));
  lesson.show("net(X).shape", net(X).sizes());
  lesson.show("parameter names", common::parameter_names(*net));

  // %% Más allá del cuaderno: MySequential es Sequential
  // The same weights in LibTorch's own Sequential give the same numbers.
  torch::nn::Sequential reference(torch::nn::Linear(20, 256), torch::nn::ReLU(), torch::nn::Linear(256, 10));
  reference->to(options.device);
  common::copy_parameters(*net, *reference);
  lesson.show("nn.Sequential with the same weights gives the same output",
              torch::equal(reference->forward(X), net(X)));

  // Registration is what lets apply() reach every layer.
  net->apply([](torch::nn::Module& m) {
    if (auto* linear = m.as<torch::nn::Linear>()) {
      torch::NoGradGuard no_grad;
      linear->weight.fill_(0.01);
    }
  });
  lesson.show("apply() set every Linear's weight to 0.01",
              net[0]->as<torch::nn::Linear>()->weight.eq(0.01).all().item<bool>() &&
                  net[2]->as<torch::nn::Linear>()->weight.eq(0.01).all().item<bool>());

  // %% Más allá del cuaderno: bloques sin registrar
  // The porting bug: the same chain in a plain std::vector, never registered (my_sequential.h).
  torch::nn::Linear first(20, 256);
  torch::nn::Linear last(256, 10);
  my_sequential::UnregisteredSequential unregistered(first, torch::nn::ReLU(), last);
  lesson.show("unregistered(X).shape", unregistered(X.cpu()).sizes());
  lesson.show("parameters() of the unregistered chain", unregistered->parameters().size());
  lesson.say("  ...although {} parameter tensors exist, hidden in the vector",
             unregistered->hidden_parameters().size());
  lesson.show("entries its state dict would save",
              unregistered->named_parameters().size() + unregistered->named_buffers().size());
  // to() walks registered children only, so on a GPU the hidden layers stay behind on the CPU.
  unregistered->to(options.device);
  lesson.say(
      "after to({}), the first layer's weight is on {}{}", options.device.str(), first->weight.device().str(),
      options.device.is_cpu() ? " (run with --device cuda to see it left behind)" : ": nothing was moved");

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
