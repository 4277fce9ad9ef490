#include "tensor_reader.h"

#include <algorithm>
#include <memory>

#include "pytorch_tensor_reader_text.h"
#include "sol/jit/compiler.h"
#include "sol/jit/shared_library.h"

namespace sol::bindings {
namespace {

using ReadFunction = int (*)(PyObject*, std::intptr_t*, std::intptr_t*) noexcept;

// The installed reader. Plain globals: every caller holds the GIL.
struct InstalledReader {
    std::shared_ptr<jit::SharedLibrary> library;
    ReadFunction read = nullptr;
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

}  // namespace

std::string install_tensor_reader(const std::vector<std::string>& flags, const std::vector<PyTypeObject*>& types) {
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
    return reader.read(tensor, &data, &version) != 0;
}

}  // namespace sol::bindings
