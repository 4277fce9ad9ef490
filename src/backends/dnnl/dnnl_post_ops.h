// The fused elementwise chain behind a oneDNN primitive (a convolution, an
// inner product) as that primitive's post-ops, shared by the primitives so
// that they accept exactly the same chains. Internal to the dnn backend.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <utility>
#include <vector>

#include "sol/ir/graph.h"

namespace sol::backends::dnnl {

// The CPU engine all primitives of the backend run on.
::dnnl::engine& engine();

// The calling thread's stream on that engine, created once per thread: a
// stream per kernel call costs microseconds, and a network makes hundreds.
::dnnl::stream& thread_stream();

// The chain as oneDNN post-ops; binary post-ops read a graph tensor.
struct PostOps {
    ::dnnl::post_ops ops;
    std::vector<std::pair<int, int>> binary_inputs;  // (post-op index, tensor id)
    std::vector<::dnnl::memory::desc> binary_descs;
    int sum_input = -1;  // tensor id a `sum` post-op adds (the output is pre-filled with it)
};

// oneDNN's format of a graph tensor's layout (ir::Tensor::channel_block):
// row-major of its rank, or channels blocked (rank 4 only).
::dnnl::memory::format_tag format_of(const ir::Tensor& tensor);

// The post-ops computing the chain (cluster[1..]) from the anchor's output.
// The primitive's destination sees the chain's result with
// `destination_rank` dims: the result's own dims when the ranks are equal (a
// convolution's NCHW), else the leading dims flattened into the first (an
// inner product's [M, N] for a [..., N] result). Side operands are described
// in that rank: leading ones where they broadcast. Throws sol::Error saying
// why when oneDNN cannot compute the chain.
PostOps chain_post_ops(const ir::Graph& graph, const std::vector<int>& cluster, std::size_t destination_rank);

// `addend` (a `sum` post-op's input, or -1) when the cluster's output may be
// computed in its buffer: the cluster reads it once, and it has the output's
// layout (so no reorder in between); else -1.
int in_place_addend(const ir::Graph& graph, const std::vector<int>& cluster, int addend);

}  // namespace sol::backends::dnnl
