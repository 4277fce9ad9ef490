// Device memory holding small random values, for timing kernels and whole
// models on this machine (autotune.h, choose_layout.h) without the
// caller's data: float32 elements uniform in [-1, 1), integers and booleans
// zero (so an index is always in range). Freed when the object goes.
#pragma once

#include <cstddef>
#include <vector>

#include "sol/devices/device.h"
#include "sol/ir/dtype.h"

namespace sol::runtime {

class ScratchBuffers {
public:
    explicit ScratchBuffers(devices::Device& device) : device_(device) {}
    ~ScratchBuffers();
    ScratchBuffers(const ScratchBuffers&) = delete;
    ScratchBuffers& operator=(const ScratchBuffers&) = delete;

    // A new buffer of `elements` values of `dtype` (at least one byte).
    void* add(std::size_t elements, ir::DType dtype);

private:
    devices::Device& device_;
    std::vector<void*> buffers_;
    unsigned seed_ = 1234;  // fixed: the same values in every process
};

}  // namespace sol::runtime
