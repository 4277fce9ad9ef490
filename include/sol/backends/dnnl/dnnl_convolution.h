// The "dnn" backend's convolution: oneDNN's convolution primitive with the
// fused elementwise chain as post-ops (ReLU, clamp, sigmoid, ..., a residual
// or per-channel add/mul, a depthwise convolution behind a 1x1 one), weights
// reordered in the parameter stage.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sol/backends/library_kernel.h"
#include "sol/ir/graph.h"

namespace sol::backends::dnnl {

// Whether a cluster (node indices, anchor first) can run as one oneDNN
// convolution; when not, `reason` says why (logged as "not chosen").
bool supports_convolution(const ir::Graph& graph, const std::vector<int>& cluster, std::string& reason);

// Whether `merged` (a 1x1 convolution's cluster followed by the cluster of
// the depthwise convolution reading its result, as
// passes/merge_depthwise_into_pointwise proposes) runs as one oneDNN
// convolution that computes the depthwise one from rows of the 1x1 result
// while they are in cache; when not, `reason` says why.
bool supports_fused_depthwise(const ir::Graph& graph, const std::vector<int>& merged, std::string& reason);

// Whether the convolution of `cluster` takes tensor `tensor_id` (its input,
// output, or an addend of the chain) channel-blocked: all but the weights
// and bias.
bool handles_channel_blocked(const ir::Graph& graph, const std::vector<int>& cluster, int tensor_id);

// The residual the convolution's `sum` post-op adds, when the output may be
// computed in its buffer (same layout, so no reorder in between); else -1,
// also for a cluster that is not a convolution's.
int in_place_input(const ir::Graph& graph, const std::vector<int>& cluster);

// Builds the primitive (done once, at load time). `arguments` are the
// call's tensor ids: x, weight, [bias], side inputs of the chain, output.
std::unique_ptr<LibraryKernel> make_convolution(const ir::Graph& graph, const std::vector<int>& cluster,
                                                const std::vector<int>& arguments);

}  // namespace sol::backends::dnnl
