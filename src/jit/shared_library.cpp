#include "sol/jit/shared_library.h"

#include <dlfcn.h>

#include "sol/error.h"

namespace sol::jit {

SharedLibrary::SharedLibrary(const std::filesystem::path& path) : path_(path) {
    // NODELETE: a kernel library brings the OpenMP runtime, whose worker
    // threads outlive any one model; unmapping it under them crashes.
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (handle_ == nullptr) throw Error("cannot load " + path.string() + ": " + dlerror());
}

SharedLibrary::~SharedLibrary() {
    if (handle_ != nullptr) dlclose(handle_);
}

void* SharedLibrary::symbol(const std::string& name) const {
    dlerror();
    void* address = dlsym(handle_, name.c_str());
    if (address == nullptr) throw Error("symbol '" + name + "' not found in " + path_.string());
    return address;
}

}  // namespace sol::jit
