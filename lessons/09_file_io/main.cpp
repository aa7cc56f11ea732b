// Lesson 09: "Archivos de E/S", "Cargando y guardando tensores" and "Cargar y guardar parámetros del
// modelo" from the notes "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/09_file_io.py holds the same cells in Python.
#include <optional>

#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "common/safetensors/safetensors.h"
#include "common/weights/state_dict.h"
#include "lessons/09_file_io/file_io.h"

int main(int argc, char** argv) try {
  const file_io::Options options(argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Cargando y guardando tensores: torch.save(x, 'x-file')
  const auto dir = lesson.out_dir();  // the notebook writes into its working folder; we write here
  // save_atomically is torch::save, written so that a full disk or a crash leaves no half-written file.
  auto x = torch::arange(4, options.device);
  common::save_atomically(x, dir / "x-file");

  // %% Cargando y guardando tensores: x2 = torch.load('x-file')
  // torch::load reads LibTorch's own archives, and runs the TorchScript they may carry: use it on your
  // own files only. Files from elsewhere go through common::load_state_dict (the last cell).
  torch::Tensor x2;
  torch::load(x2, (dir / "x-file").string());
  lesson.show("x2", x2);

  // %% Cargando y guardando tensores: una lista de tensores
  auto y = torch::zeros(4, options.device);
  common::save_atomically(std::vector<torch::Tensor>{x, y}, dir / "x-files");
  std::vector<torch::Tensor> x2_y2;
  torch::load(x2_y2, (dir / "x-files").string());
  lesson.show("(x2, y2)[0]", x2_y2.at(0));
  lesson.show("(x2, y2)[1]", x2_y2.at(1));

  // %% Cargando y guardando tensores: un diccionario
  // torch::save has no dict overload; file_io::save_tensor_dict writes one entry per key.
  file_io::save_tensor_dict({{"x", x}, {"y", y}}, dir / "mydict");
  auto mydict2 = file_io::load_tensor_dict(dir / "mydict");
  lesson.show("mydict2['x']", mydict2.at("x"));
  lesson.show("mydict2['y']", mydict2.at("y"));

  // %% Cargar y guardar parámetros del modelo: la clase MLP
  // The class is in file_io.h, as the notebook writes it.
  using file_io::MLP;

  // %% Cargar y guardar parámetros del modelo: net = MLP()
  MLP net;
  net->to(options.device);
  auto X = torch::randn({2, 20}).to(options.device);
  auto Y = net(X);
  lesson.show("Y", Y);

  // %% Cargar y guardar parámetros del modelo: torch.save(net.state_dict(), 'mlp.params')
  // Only the parameters are saved: the architecture lives in the code. The file is what Python's
  // torch.save(net.state_dict(), 'mlp.params') writes, so Python opens it too.
  common::save_state_dict(*net, dir / "mlp.params");

  // %% Cargar y guardar parámetros del modelo: clone.load_state_dict(...)
  MLP clone;
  clone->to(options.device);
  lesson.show("a fresh MLP gives another output before loading", !torch::equal(clone(X), Y));
  common::load_state_dict(*clone, dir / "mlp.params");
  clone->eval();

  // %% Cargar y guardar parámetros del modelo: Y_clone == Y
  auto Y_clone = clone(X);
  lesson.say("Y_clone == Y:\n{}", common::format_tensor(Y_clone == Y));
  lesson.show("torch.equal(Y_clone, Y)", torch::equal(Y_clone, Y));

  // %% Más allá: safetensors
  // A safetensors file is a header (names, dtypes, shapes) and the bytes: nothing in it runs, and the
  // Hugging Face hub, diffusers and vLLM read it. It has no checksum: a flipped bit loads as a wrong value.
  common::safetensors::save_file(common::state_dict(*net), dir / "mlp.safetensors");
  MLP clone2;
  clone2->to(options.device);
  common::load_state_dict(*clone2, dir / "mlp.safetensors");
  clone2->eval();
  lesson.show("torch.equal(clone2(X), Y)", torch::equal(clone2(X), Y));

  // %% Más allá del cuaderno: archivos para Python (solo C++)
  // The same values in Python's torch.save format, which torch.load(path, weights_only=True) opens.
  common::save_for_python(x.cpu(), dir / "x-file.pt");
  common::save_for_python(c10::List<torch::Tensor>({x.cpu(), y.cpu()}), dir / "x-files.pt");
  c10::Dict<std::string, torch::Tensor> for_python;
  for_python.insert("x", x.cpu());
  for_python.insert("y", y.cpu());
  common::save_for_python(for_python, dir / "mydict.pt");
  common::save_for_python(X.cpu(), dir / "X.pt");
  lesson.say("written for Python: x-file.pt, x-files.pt, mydict.pt, X.pt (and mlp.params)");

  // %% Más allá del cuaderno: parámetros de otro lado con --load (solo C++)
  if (options.loaded) {
    MLP from_file;
    common::load_state_dict(*from_file, *options.loaded, options.load_path);
    from_file->to(options.device);
    from_file->eval();
    Y = from_file(X);
    lesson.say("loaded {} into the MLP", options.load_path);
    lesson.show("output of the loaded MLP on X", Y);
  }
  common::save_for_python(Y.detach().cpu(), dir / "Y.pt");
  lesson.say("Y.pt holds {}", options.loaded ? "the loaded model's output" : "Y");

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
