// The "dnn" backend's linear layer (y = x w^T + b): oneDNN's inner product
// over x seen as [M, K] (M: the product of x's leading dims), with the fused
// elementwise chain as post-ops, weights reordered in the parameter stage.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sol/backends/library_kernel.h"
#include "sol/ir/graph.h"

namespace sol::backends::dnnl {

// Whether a cluster (node indices, anchor first) can run as one oneDNN
// inner product; when not, `reason` says why (logged as "not chosen").
bool supports_linear(const ir::Graph& graph, const std::vector<int>& cluster, std::string& reason);

// The residual the inner product's `sum` post-op adds, when the output may
// be computed in its buffer; else -1, also for a cluster that is not a
// linear layer's.
int linear_in_place_input(const ir::Graph& graph, const std::vector<int>& cluster);

// Builds the primitive (done once, at load time). `arguments` are the
// call's tensor ids: x, weight, [bias], side inputs of the chain, output.
std::unique_ptr<LibraryKernel> make_linear(const ir::Graph& graph, const std::vector<int>& cluster,
                                           const std::vector<int>& arguments);

}  // namespace sol::backends::dnnl
