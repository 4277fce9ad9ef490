#include "scratch_buffers.h"

#include <algorithm>
#include <random>

namespace sol::runtime {

ScratchBuffers::~ScratchBuffers() {
    for (void* memory : buffers_) device_.release(memory);
}

void* ScratchBuffers::add(std::size_t elements, ir::DType dtype) {
    std::vector<char> host(std::max<std::size_t>(elements * ir::byte_size(dtype), 1), 0);
    if (dtype == ir::DType::Float32) {
        std::mt19937 engine(seed_++);
        std::uniform_real_distribution<float> value(-1.0f, 1.0f);
        for (std::size_t k = 0; k < elements; ++k) reinterpret_cast<float*>(host.data())[k] = value(engine);
    }
    void* memory = device_.allocate(host.size());
    buffers_.push_back(memory);
    device_.copy_from_host(memory, host.data(), host.size());
    return memory;
}

}  // namespace sol::runtime
