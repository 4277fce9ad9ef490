// Reads what SolModule's parameter check compares, the data pointer and the in-place version of a
// PyTorch tensor, straight from the tensor's C++ object (c10::TensorImpl).
//
// SOL's build does not depend on PyTorch. This file is compiled when SOL first runs, against the
// headers of the PyTorch that runs (python/sol/pytorch/tensor_reader.py), so the TensorImpl it
// reads always has the layout it was compiled for; the library is cached per PyTorch build. Only
// c10's TensorImpl header is included (about a second to compile; PyTorch's Python object header
// pulls in pybind11 and ATen and takes six): where the Python object keeps its TensorImpl pointer
// is found by the caller at run time (tensor_reader.cpp) and passed in as `impl_offset`.
//
// Why: the check runs before every call, right after the kernels have evicted the tensor objects
// from the caches. Through the Python attributes (`data_ptr()`, `_version`) it costs 250-500 ns
// of cache misses per tensor; read here, 70-150 ns.
#include <c10/core/TensorImpl.h>

#include <cstddef>
#include <cstdint>

// 1 with the state in `data` and `version`; 0 when this tensor cannot be read here (no storage,
// or an inference tensor, which has no version counter): the caller then asks Python.
extern "C" int sol_read_tensor_state(const void* tensor, std::ptrdiff_t impl_offset, std::intptr_t* data,
                                     std::intptr_t* version) noexcept {
    try {
        c10::TensorImpl* impl = *reinterpret_cast<c10::TensorImpl* const*>(static_cast<const char*>(tensor) + impl_offset);
        if (impl->is_inference()) return 0;
        *data = reinterpret_cast<std::intptr_t>(impl->data());
        *version = static_cast<std::intptr_t>(impl->version_counter().current_version());
        return 1;
    } catch (...) {
        return 0;
    }
}
