// Depth-first fusion of a library's convolution pair: MobileNetV2's and
// MNASNet's blocks expand their channels with a 1x1 convolution (x6 or x3)
// and filter the expanded tensor with a 3x3 depthwise convolution. oneDNN can
// compute the depthwise convolution inside the 1x1 one, from rows of its
// result while they are in cache (its "dw" post-op), so the expanded tensor,
// the largest of the block, is never stored and read back.
//
// Runs after assign_layouts, as fuse_depth_first does: whether oneDNN has the
// fused kernel depends on the layouts. The depthwise convolution's cluster
// (its node and elementwise chain) joins the 1x1 convolution's cluster, and
// the device's check decides where that runs as one library call and pays.
#pragma once

#include <functional>
#include <vector>

#include "sol/ir/graph.h"

namespace sol::passes {

// Whether the merged cluster (node indices in order: the 1x1 convolution,
// its chain, the depthwise convolution, its chain) runs as one library call.
using FusedPairCheck = std::function<bool(const ir::Graph&, const std::vector<int>& merged)>;

// Rewrites Node::cluster; returns how many depthwise convolutions were
// merged into the 1x1 convolution before them.
int merge_depthwise_into_pointwise(ir::Graph& graph, const FusedPairCheck& runs_fused);

}  // namespace sol::passes
