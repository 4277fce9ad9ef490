#include "tensor_reader.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "pytorch_tensor_reader_text.h"
#include "sol/error.h"
#include "sol/jit/compiler.h"
#include "sol/jit/shared_library.h"

namespace sol::bindings {
namespace {

using ReadFunction = int (*)(const void*, std::ptrdiff_t, std::intptr_t*, std::intptr_t*) noexcept;

// The installed reader. Plain globals: every caller holds the GIL.
struct InstalledReader {
    std::shared_ptr<jit::SharedLibrary> library;
    ReadFunction read = nullptr;
    std::ptrdiff_t impl_offset = 0;    // of the TensorImpl pointer inside the Python object
    std::vector<PyTypeObject*> types;  // owned references, for as long as they are compared with
};

InstalledReader& installed() {
    static InstalledReader reader;
    return reader;
}

void release_types(std::vector<PyTypeObject*>& types) {
    for (PyTypeObject* type : types) Py_DECREF(reinterpret_cast<PyObject*>(type));
    types.clear();
}

// The offset inside the Python object, past its header and within its type's size, where every
// probe holds the address of its TensorImpl.
std::ptrdiff_t find_impl_offset(const std::vector<TensorProbe>& probes) {
    if (probes.empty()) throw Error("the tensor reader needs probe tensors to find their TensorImpl pointer");
    Py_ssize_t size = Py_TYPE(probes.front().tensor)->tp_basicsize;
    for (const TensorProbe& probe : probes) size = std::min(size, Py_TYPE(probe.tensor)->tp_basicsize);
    for (std::ptrdiff_t offset = sizeof(PyObject); offset + static_cast<std::ptrdiff_t>(sizeof(void*)) <= size;
         offset += sizeof(void*)) {
        bool everywhere = true;
        for (const TensorProbe& probe : probes) {
            std::uintptr_t word;
            std::memcpy(&word, reinterpret_cast<const char*>(probe.tensor) + offset, sizeof word);
            everywhere &= word == probe.impl;
        }
        if (everywhere) return offset;
    }
    throw Error("the PyTorch tensor objects keep their TensorImpl pointer nowhere the reader can find it");
}

}  // namespace

std::string install_tensor_reader(const std::vector<std::string>& flags, const std::vector<PyTypeObject*>& types,
                                  const std::vector<TensorProbe>& probes) {
    const std::ptrdiff_t impl_offset = find_impl_offset(probes);
    std::shared_ptr<jit::SharedLibrary> library;
    {
        // Compiling takes seconds the first time: other Python threads may run meanwhile.
        PyThreadState* thread = PyEval_SaveThread();
        try {
            jit::Compiler compiler = jit::find_host_compiler();
            compiler.flags.insert(compiler.flags.end(), flags.begin(), flags.end());
            library = std::make_shared<jit::SharedLibrary>(
                jit::build_shared_library(compiler, kPyTorchTensorReader, "the PyTorch tensor reader"));
        } catch (...) {
            PyEval_RestoreThread(thread);
            throw;
        }
        PyEval_RestoreThread(thread);
    }
    auto read = reinterpret_cast<ReadFunction>(library->symbol("sol_read_tensor_state"));
    InstalledReader& reader = installed();
    release_types(reader.types);
    for (PyTypeObject* type : types) {
        Py_INCREF(reinterpret_cast<PyObject*>(type));
        reader.types.push_back(type);
    }
    reader.library = std::move(library);
    reader.read = read;
    reader.impl_offset = impl_offset;
    return reader.library->path().string();
}

void remove_tensor_reader() {
    InstalledReader& reader = installed();
    reader.read = nullptr;
    release_types(reader.types);
    // The library stays loaded: a reinstall finds the same file, and nothing else is held.
}

std::string tensor_reader_path() {
    const InstalledReader& reader = installed();
    return reader.read != nullptr ? reader.library->path().string() : std::string();
}

bool read_tensor_directly(PyObject* tensor, std::intptr_t& data, std::intptr_t& version) {
    const InstalledReader& reader = installed();
    if (reader.read == nullptr) return false;
    // Exact types only: a subclass may define data_ptr() or its storage differently.
    if (std::find(reader.types.begin(), reader.types.end(), Py_TYPE(tensor)) == reader.types.end()) return false;
    return reader.read(tensor, reader.impl_offset, &data, &version) != 0;
}

}  // namespace sol::bindings
