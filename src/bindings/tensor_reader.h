// The direct tensor reader: a small library compiled at run time from
// templates/pytorch_tensor_reader.cpp against the headers of the PyTorch that
// runs, which reads a tensor's data pointer and in-place version from its C++
// object. TensorFingerprint uses it where it is installed and falls back to
// the Python attributes elsewhere. Callers hold the GIL.
#pragma once

#include <Python.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sol::bindings {

// Compiles the reader (or finds it in the compile cache) with `flags` added to
// the host compiler's (the PyTorch include and library folders; a definition
// naming the PyTorch build, so another build gets its own library), loads it,
// and reads objects whose type is exactly one of `types` through it from now
// on. `probes` are tensor objects of those types with the address of their
// c10::TensorImpl (PyTorch's `_cdata`): the one offset inside the object
// where every probe keeps that address is where the reader looks. Returns the
// library's path. Throws sol::CompileError or sol::Error when it does not
// build or load, or when no such offset exists; the reader installed before,
// if any, stays.
struct TensorProbe {
    PyObject* tensor;
    std::uintptr_t impl;
};
std::string install_tensor_reader(const std::vector<std::string>& flags, const std::vector<PyTypeObject*>& types,
                                  const std::vector<TensorProbe>& probes);

// Stops reading through the library; TensorFingerprint asks Python again.
void remove_tensor_reader();

// The installed library's path; empty when none is installed.
std::string tensor_reader_path();

// The data pointer and version of `tensor` read through the reader; false when
// none is installed, `tensor`'s type is not one it reads, or it cannot read
// this tensor (no storage, an inference tensor).
bool read_tensor_directly(PyObject* tensor, std::intptr_t& data, std::intptr_t& version);

}  // namespace sol::bindings
