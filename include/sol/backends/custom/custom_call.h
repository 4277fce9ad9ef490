// A custom layer's kernel (sol.nn.CustomLayer): the user's C function from
// the user's shared library, called with a context describing the shapes
// (sol/custom_layer.h) and every operand by pointer. Nodes `custom` and
// `custom_backward` run only this way. The node names each device's kernels
// as attributes "<device>.library", "<device>.forward", "<device>.backward".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sol/backends/library_kernel.h"
#include "sol/ir/graph.h"

namespace sol::backends::custom {

// Every custom layer attribute holding a library path ends in this.
inline constexpr const char* kLibrarySuffix = ".library";

// Loads the library and resolves the functions now, so that a missing file
// or symbol is an error when the model is compiled: sol::Error naming the
// file, the symbol and the layer. A forward node resolves the backward
// function too, when the layer has one.
std::unique_ptr<LibraryKernel> make_custom_call(const ir::Graph& graph, int node, const std::vector<int>& arguments,
                                                const std::string& device);

}  // namespace sol::backends::custom
