// What a code generator hands to the JIT and the runtime: kernels (one per
// fused cluster) in execution order, and the source of the module that holds
// them.
#pragma once

#include <string>
#include <vector>

namespace sol::codegen {

struct KernelCall {
    std::string function;        // symbol in the compiled module
    std::vector<int> arguments;  // tensor ids: inputs first, the output last
    bool parameter_stage = false;  // depends on parameters only: run once per weight update
    std::string description;     // op chain and origins, for logs and the source listing
};

struct GeneratedModule {
    std::string source;             // one translation unit
    std::vector<KernelCall> calls;  // execution order
    int unique_kernels = 0;         // identical kernels are emitted once
};

}  // namespace sol::codegen
