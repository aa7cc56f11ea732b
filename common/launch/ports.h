#pragma once
// Ports on 127.0.0.1 for ranks started on this machine to meet at.
#include <cstdint>

namespace common::launch {

// A port nobody listens on right now (the kernel picks it).
uint16_t free_port();

// Whether something already holds the port.
bool port_in_use(uint16_t port);

}  // namespace common::launch
