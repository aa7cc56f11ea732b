// Lesson 09: "Archivos de E/S", "Cargando y guardando tensores" and "Cargar y guardar parámetros del
// modelo" from the notes "Modelos Personalizados en PyTorch".
#include <optional>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/lesson.h"
#include "common/serialize.h"
#include "lessons/09_file_io/file_io.h"

int main(int argc, char** argv) {
  common::LessonApp app("09_file_io", "Archivos de E/S: tensors and model parameters on disk");
  std::string load_path;
  app.cli()
      .add_option(
          "--load", load_path,
          "load the MLP's parameters from this file (Python's torch.save of a state dict, or a LibTorch "
          "torch::save archive; read as data, nothing in it is run), print its output on X and write "
          "it to Y.pt")
      ->check(CLI::ExistingFile);
  return app.run(argc, argv, [&](common::Lesson& lesson) {
    const auto& device = lesson.device();
    const auto dir = lesson.out_dir();

    // A file given with --load is read and checked against the MLP before anything is written, so a bad
    // file leaves the output folder as it was.
    std::optional<common::StateDict> loaded;
    if (!load_path.empty()) {
      loaded = common::read_state_dict(load_path);
      file_io::MLP probe;
      common::load_state_dict(*probe, *loaded, load_path);
    }

    lesson.banner("Cargando y guardando tensores", "A tensor, a list of tensors, a dict of tensors");
    auto x = torch::arange(4, device);
    common::save_atomically(x, dir / "x-file");
    torch::Tensor x2;
    torch::load(x2, (dir / "x-file").string());
    lesson.show("x2", "x2 = load(x-file)", x2);

    auto y = torch::zeros(4, device);
    common::save_atomically(std::vector<torch::Tensor>{x, y}, dir / "x-files");
    std::vector<torch::Tensor> xy;
    torch::load(xy, (dir / "x-files").string());
    lesson.show("xy_x", "load(x-files)[0]", xy.at(0));
    lesson.show("xy_y", "load(x-files)[1]", xy.at(1));

    file_io::save_tensor_dict({{"x", x}, {"y", y}}, dir / "mydict");
    auto mydict2 = file_io::load_tensor_dict(dir / "mydict");
    lesson.show("mydict_x", "load(mydict)[\"x\"]", mydict2.at("x"));
    lesson.show("mydict_y", "load(mydict)[\"y\"]", mydict2.at("y"));

    // The same three in Python's torch.save format, which torch.load(path, weights_only=True) opens.
    common::save_for_python(x.cpu(), dir / "x-file.pt");
    common::save_for_python(c10::List<torch::Tensor>({x.cpu(), y.cpu()}), dir / "x-files.pt");
    c10::Dict<std::string, torch::Tensor> for_python;
    for_python.insert("x", x.cpu());
    for_python.insert("y", y.cpu());
    common::save_for_python(for_python, dir / "mydict.pt");
    lesson.say("also written for Python: x-file.pt, x-files.pt, mydict.pt");

    lesson.banner("Cargar y guardar parámetros del modelo",
                  "Save the parameters, rebuild the model in code, load");
    file_io::MLP net;
    net->to(device);
    auto X = torch::randn({2, 20}).to(device);
    auto Y = net(X);
    lesson.show("Y", "Y = net(X)", Y);
    // Only parameters are saved: the architecture lives in the code (file_io::MLP). The file is what
    // Python's torch.save(net.state_dict(), 'mlp.params') writes, so Python opens it too.
    common::save_state_dict(*net, dir / "mlp.params");
    common::save_for_python(X.cpu(), dir / "X.pt");
    lesson.say("saved mlp.params and X.pt (Python opens both with torch.load)");

    file_io::MLP clone;
    clone->to(device);
    lesson.show("clone_differs_before_load", "a fresh MLP gives another output before loading",
                !torch::equal(clone(X), Y));
    common::load_state_dict(*clone, dir / "mlp.params");
    clone->eval();
    auto Y_clone = clone(X);
    lesson.show("Y_clone_equals_Y", "after loading mlp.params: Y_clone == Y", torch::equal(Y_clone, Y));

    if (loaded) {
      lesson.banner("Cargar y guardar parámetros del modelo", "The parameters given with --load");
      file_io::MLP from_file;
      common::load_state_dict(*from_file, *loaded, load_path);
      from_file->to(device);
      from_file->eval();
      Y = from_file(X);
      lesson.say("loaded {} into the MLP", load_path);
      lesson.show("Y_loaded", "its output on X", Y);
    }
    common::save_for_python(Y.detach().cpu(), dir / "Y.pt");
    lesson.say("Y.pt holds {}", loaded ? "the loaded model's output" : "Y");
  });
}
