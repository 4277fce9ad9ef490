// sol.deploy's core: a compiled model and its weights become a shared
// library with a C API and its header, depending on neither Python nor a
// framework. The library holds the model's kernels (compiled again from the
// module source), SOL's runtime (linked from SOL's static core library),
// the plan that rebuilds the runtime without a compiler (deployment_plan.h)
// and the weights. Custom layers' libraries are copied beside it. Only the
// host CPU for now: another device would add its own way to build here.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "sol/runtime/compiled_model.h"

namespace sol::deploy {

struct LibraryOptions {
    std::string lib_name;   // libNAME.so and NAME.h
    std::string func_name;  // NAME_init, NAME_seed and NAME
    std::filesystem::path directory;  // where the library and header go (created)
    // SOL's static core library and headers, linked into the library.
    std::filesystem::path runtime_archive;
    std::filesystem::path include_directory;
    // Intermediate sources, objects and logs (kept for reading).
    std::filesystem::path build_directory;
};

struct DeployedFiles {
    std::filesystem::path library;
    std::filesystem::path header;
};

// `model` was compiled with CompileOptions::keep_for_deployment;
// `parameters` point at the values of model.parameters(), in order, in host
// memory. Throws sol::Error naming the reason when the model cannot be
// deployed (several inputs, a non-float32 input or output, a bad name).
DeployedFiles write_shared_library(const runtime::CompiledModel& model, const std::vector<const void*>& parameters,
                                   const LibraryOptions& options);

}  // namespace sol::deploy
