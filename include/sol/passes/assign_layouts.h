// Picks the memory layout of every intermediate tensor: channel-blocked
// (NCHW{b}c, see ir::Tensor::channel_block; NHWC is the block of all C)
// where the kernel writing it and every kernel reading it work on blocks,
// row-major otherwise.
//
// No conversion nodes are inserted: a tensor is blocked only when all its
// kernels take it so, which keeps the framework's layout at the graph's edges
// (inputs, outputs, parameters) and wherever an op needs it (reshape,
// softmax, ...), and makes chains of blocked kernels (oneDNN convolutions,
// pooling, elementwise tails, channel concats) convert nothing in between.
// Runs after fusion: a kernel is a cluster, and only cluster results are
// ever stored.
#pragma once

#include <functional>
#include <vector>

#include "sol/ir/graph.h"

namespace sol::passes {

// Whether the kernel of `cluster` (node indices, anchor first) can read or
// write tensor `tensor_id` channel-blocked; asked of the device.
using BlockedAccess = std::function<bool(const ir::Graph&, const std::vector<int>& cluster, int tensor_id)>;

// Whether the kernel of `cluster` runs well with the layouts its tensors have
// now (a library may support some combinations of input and output layout
// only by a slow reference implementation).
using LayoutCheck = std::function<bool(const ir::Graph&, const std::vector<int>& cluster)>;

// In `blocks`: the tensor's own channel count, one block of all channels,
// which is the channels-last layout (NHWC).
inline constexpr int kChannelsLast = -1;

// Blocks every tensor `accepts` allows for its writer and all its readers, by
// the first of `blocks` that divides its channels or is kChannelsLast (none:
// row-major; an empty list keeps everything row-major); then, while `check`
// rejects a kernel, makes that kernel's tensors row-major again. Returns how
// many tensors stay blocked.
int assign_layouts(ir::Graph& graph, const std::vector<int>& blocks, const BlockedAccess& accepts,
                   const LayoutCheck& check);

}  // namespace sol::passes
