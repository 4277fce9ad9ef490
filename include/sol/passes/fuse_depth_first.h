// Depth-first fusion (the BrainSlug idea behind SOL): a kernel whose result
// only one other generated kernel reads is computed inside that reader, at
// the elements the reader visits, instead of being written to memory and read
// back. Three shapes occur in the zoo's networks and their training graphs:
//
// * a channel concat read by an elementwise chain (DenseNet's concat ->
//   BatchNorm -> ReLU before every convolution): one kernel reads the parts
//   and writes the chain's result; the concatenated tensor never exists;
// * a channel concat and/or an elementwise chain read by a pooling window
//   (DenseNet's concat -> BN -> ReLU -> global average pool, GoogLeNet's
//   concat -> max pool): the pooling kernel computes its input tap by tap,
//   so the tail of a block is one pass over the block's outputs;
// * an elementwise chain read by a sum or mean (BatchNorm's variance of the
//   centered input in training, and its gradients' sums of products): the
//   product is summed as it is computed and never stored.
//
// Runs after assign_layouts (the merged kernel reads the parts as they are
// laid out) and merges only when the parts of a concat share one layout, so
// one loop nest walks them all. Producers whose chain would be recomputed
// more than a few times (overlapping pooling windows) stay separate.
#pragma once

#include <functional>
#include <vector>

#include "sol/ir/graph.h"

namespace sol::passes {

// Whether `cluster` (node indices in order) runs as generated code; the pass
// never merges into or out of a library call.
using GeneratedCheck = std::function<bool(const ir::Graph&, const std::vector<int>& cluster)>;

// Rewrites Node::cluster; returns how many kernels were merged into their
// reader's kernel.
int fuse_depth_first(ir::Graph& graph, const GeneratedCheck& generated);

}  // namespace sol::passes
