// The operands of a oneDNN primitive call, described once and bound to each
// call's pointers. Internal to the dnn backend.
//
// Creating oneDNN memory objects and the argument map on every call costs
// more than a small primitive runs: about 1.7 of 3.1 microseconds for a
// 16-channel 4x4 convolution on the 2-core AVX-512 host, and a network makes
// dozens of calls. The runtime hands a kernel the same pointers call after
// call (its workspace is pooled, weights move only on updates), so the
// memory objects are kept and one is re-created only where its pointer
// changed. Never set_data_handle: oneDNN then zeroes the padding of blocked
// tensors, a write into the caller's buffers.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <span>
#include <unordered_map>
#include <vector>

namespace sol::backends::dnnl {

// One call's pointers, in the order of the operands' add(), without a heap
// allocation per call. Room for a forward primitive's source, weights,
// destination, scratchpad and bias and oneDNN's limit of 32 post-ops.
class CallPointers {
public:
    void push(void* pointer);
    std::span<void* const> all() const { return {at_.data(), count_}; }

private:
    std::array<void*, 40> at_{};
    std::size_t count_ = 0;
};

class Operands {
public:
    Operands() = default;
    Operands(const Operands&) = delete;
    Operands& operator=(const Operands&) = delete;

    // One operand: oneDNN's argument index (DNNL_ARG_*) and its description.
    void add(int argument, const ::dnnl::memory::desc& desc);

    // Runs `primitive` on the operands at `pointers` (one per add(), in that
    // order) and waits for it. A call that finds the kept objects in use by
    // another thread builds its own.
    void execute(const ::dnnl::primitive& primitive, ::dnnl::stream& stream, std::span<void* const> pointers);

private:
    std::vector<int> arguments_;
    std::vector<::dnnl::memory::desc> descs_;
    std::unordered_map<int, ::dnnl::memory> bound_;
    std::vector<::dnnl::memory*> slots_;  // into bound_, in add() order
    std::vector<void*> pointers_;         // each slot's current pointer
    std::atomic_flag busy_;
};

}  // namespace sol::backends::dnnl
