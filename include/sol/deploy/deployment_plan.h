// What a deployed library carries to rebuild its runtime without a
// compiler: the device-lowered graph and the kernel calls (autotuning's
// choices made), as text; and where each parameter's bytes sit in the
// weights that travel with it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "sol/codegen/kernel.h"
#include "sol/ir/graph.h"

namespace sol::deploy {

struct DeploymentPlan {
    std::string device;  // the device the kernels were generated for ("x86")
    // CPU features the kernels were compiled for (-march of the deploying
    // machine), as __builtin_cpu_supports names them; a CPU without one of
    // them refuses to load the library instead of crashing in a kernel.
    std::vector<std::string> cpu_features;
    ir::Graph graph;
    std::vector<codegen::KernelCall> calls;
};

std::string write_plan(const std::string& device, const std::vector<std::string>& cpu_features,
                       const ir::Graph& graph, const std::vector<codegen::KernelCall>& calls);
// Throws sol::Error naming what is malformed.
DeploymentPlan read_plan(std::string_view text);

// The extensions of this CPU that -march=native code may use (on x86: from
// SSE4.2 to the AVX-512 families, FMA, BMI, GFNI, ...; none listed elsewhere).
std::vector<std::string> host_cpu_features();
// Those of `features` this CPU lacks.
std::vector<std::string> missing_cpu_features(const std::vector<std::string>& features);

// Byte offset of each of the graph's parameters (in graph.parameters()
// order) in the weights blob, each aligned for vector loads; the last entry
// is the blob's size.
std::vector<std::size_t> weight_offsets(const ir::Graph& graph);

}  // namespace sol::deploy
