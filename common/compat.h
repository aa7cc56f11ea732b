#pragma once
// Where LibTorch's API differs between the versions the suite builds against (Debian 12's 1.13,
// Debian 13's 2.6, the newest from PyPI), the difference is hidden here, once.
#include <sstream>
#include <string>
#include <type_traits>

#include <torch/torch.h>

namespace common {

// The key under which an optimizer keeps a parameter's state. LibTorch 1.13 keys its state map by the
// parameter's TensorImpl address printed as a string (c10::guts::to_string, since removed); later
// versions key it by the address itself. The map's own key type says which.
template <typename StateMap>
typename StateMap::key_type optimizer_state_key(const StateMap& /*state*/, const torch::Tensor& parameter) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << parameter.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

// SGD's momentum buffer for a parameter (undefined before its first step), and setting it.
inline torch::Tensor sgd_momentum_buffer(const torch::optim::SGD& optimizer, const torch::Tensor& parameter) {
  const auto& state = optimizer.state();
  const auto found = state.find(optimizer_state_key(state, parameter));
  if (found == state.end()) return {};
  return static_cast<const torch::optim::SGDParamState&>(*found->second).momentum_buffer();
}

inline void set_sgd_momentum_buffer(torch::optim::SGD& optimizer, const torch::Tensor& parameter,
                                    torch::Tensor buffer) {
  auto& state = optimizer.state();
  auto param_state = std::make_unique<torch::optim::SGDParamState>();
  param_state->momentum_buffer(std::move(buffer));
  state[optimizer_state_key(state, parameter)] = std::move(param_state);
}

// LibTorch 2.x's TCPStore serves through libuv by default (TCPStoreOptions::useLibUV, absent in 1.13), and
// Debian 13's LibTorch 2.6 is built without libuv: the store would refuse to start. The classic server
// works everywhere, so it is asked for where the option exists.
template <typename StoreOptions>
auto use_classic_tcp_store(StoreOptions& options, int /*prefer*/)
    -> decltype(options.useLibUV = false, void()) {
  options.useLibUV = false;
}
template <typename StoreOptions>
void use_classic_tcp_store(StoreOptions& /*options*/, long /*fallback*/) {}

}  // namespace common
