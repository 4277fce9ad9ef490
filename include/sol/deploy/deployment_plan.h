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
    ir::Graph graph;
    std::vector<codegen::KernelCall> calls;
};

std::string write_plan(const std::string& device, const ir::Graph& graph, const std::vector<codegen::KernelCall>& calls);
// Throws sol::Error naming what is malformed.
DeploymentPlan read_plan(std::string_view text);

// Byte offset of each of the graph's parameters (in graph.parameters()
// order) in the weights blob, each aligned for vector loads; the last entry
// is the blob's size.
std::vector<std::size_t> weight_offsets(const ir::Graph& graph);

}  // namespace sol::deploy
