// The "dnn" backend's convolution gradients (training): oneDNN's
// convolution_backward_data and convolution_backward_weights primitives for
// the graph's conv2d_backward_data and conv2d_backward_weight ops, in the
// layouts oneDNN prefers, with reorders from and to the graph's row-major
// tensors on every call; the weights the data gradient reads are reordered
// once per weight update.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sol/backends/library_kernel.h"
#include "sol/ir/graph.h"

namespace sol::backends::dnnl {

// Whether `cluster` (a lone convolution-gradient node) runs in oneDNN
// without its reference implementation; when not, `reason` says why.
bool supports_convolution_backward(const ir::Graph& graph, const std::vector<int>& cluster, std::string& reason);

// `arguments`: dy, then the weights (data gradient) or the forward input
// (weight gradient), the output last.
std::unique_ptr<LibraryKernel> make_convolution_backward(const ir::Graph& graph, const std::vector<int>& cluster,
                                                         const std::vector<int>& arguments);

}  // namespace sol::backends::dnnl
