// The host CPU as a device: memory is ordinary aligned host memory, kernels
// are generated C++ compiled by the host compiler and called directly.
#pragma once

#include "sol/devices/device.h"

namespace sol::devices {

// Registers "x86" (or "arm64" on ARM hosts) with the registry. Idempotent.
void register_host_device();

}  // namespace sol::devices
