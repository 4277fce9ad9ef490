// Reads what SolModule's parameter check compares, the data pointer and the in-place version of a
// PyTorch tensor, straight from the tensor's C++ object.
//
// SOL's build does not depend on PyTorch. This file is compiled when SOL first runs, against the
// headers of the PyTorch that runs (python/sol/pytorch/tensor_reader.py), so the object layouts
// it reads always match; the compiled library is cached per PyTorch build.
//
// Why: the check runs before every call, right after the kernels have evicted the tensor objects
// from the caches. Through the Python attributes (`data_ptr()`, `_version`) it costs about 300 ns
// of cache misses per tensor; read here, about 70 ns.
#include <torch/csrc/autograd/python_variable.h>

#include <cstdint>

// 1 with the state in `data` and `version`; 0 when this tensor cannot be read here (no storage,
// or an inference tensor, which has no version counter): the caller then asks Python.
// The caller has checked that `tensor` is a torch.Tensor or torch.nn.Parameter.
extern "C" int sol_read_tensor_state(PyObject* tensor, std::intptr_t* data, std::intptr_t* version) noexcept {
    try {
        c10::TensorImpl* impl = THPVariable_Unpack(tensor).unsafeGetTensorImpl();
        if (impl->is_inference()) return 0;
        *data = reinterpret_cast<std::intptr_t>(impl->data());
        *version = static_cast<std::intptr_t>(impl->version_counter().current_version());
        return 1;
    } catch (...) {
        return 0;
    }
}
