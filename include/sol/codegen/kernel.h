// What a code generator hands to the JIT and the runtime: kernels (one per
// fused cluster) in execution order, and the source of the module that holds
// them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sol/ir/graph.h"

namespace sol::codegen {

struct KernelCall {
    std::string backend = "dfp";  // "dfp": generated code; otherwise a library backend ("dnn")
    std::string function;        // symbol in the compiled module (dfp only)
    std::vector<int> nodes;      // the cluster's node indices in order (a library call's anchor first)
    std::vector<int> arguments;  // tensor ids: inputs first, the output last
    bool parameter_stage = false;  // depends on parameters only: run once per weight update
    std::string description;     // op chain and origins, for logs and the source listing
    // An argument whose buffer the output may share when this call is its
    // last reader (the kernel then computes in place); -1: none.
    int may_overwrite = -1;
    // For a library call: a generated kernel computing the same cluster, and
    // its arguments, so the runtime can time both and keep the faster
    // (autotuning). Empty where generated code cannot read the layouts.
    std::string alternative;
    std::vector<int> alternative_arguments;
    // For a library call: which of its ways to run (LibraryKernel variants)
    // when autotuning does not choose; a deployed library's calls carry the
    // choice autotuning made when it was built.
    int variant = 0;
};

struct GeneratedModule {
    std::string source;             // one translation unit, the module as a reader sees it
    // The same kernels split into translation units that compile in
    // parallel (each with the prologue); empty: compile `source`.
    std::vector<std::string> units;
    std::vector<KernelCall> calls;  // execution order
    int unique_kernels = 0;         // identical kernels are emitted once
    // Kernel calls that compute another kernel's result inside them instead
    // of reading it from memory (passes/fuse_depth_first).
    int depth_first_calls = 0;
};

// Picks a library backend for a cluster (node indices, anchor first), or
// returns "" to generate code for it.
using BackendSelector = std::function<std::string(const ir::Graph&, const std::vector<int>&)>;

// The tensors a library call reads and writes, in the order its kernel gets
// them: the anchor's non-constant inputs, the chain's non-constant side
// inputs, the output last (each tensor once). A custom layer's call takes
// its operands exactly as the node lists them, then the output.
std::vector<int> library_call_arguments(const ir::Graph& graph, const std::vector<int>& cluster);

}  // namespace sol::codegen
