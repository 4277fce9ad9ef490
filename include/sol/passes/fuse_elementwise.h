// Groups each anchor node (contraction, pooling, elementwise) with the chain of
// elementwise nodes that consume its result alone into one kernel, so the
// chain runs on values still in registers (conv + bias + ReLU is one kernel).
// Sets Node::cluster; returns how many nodes were fused into another's kernel.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

int fuse_elementwise(ir::Graph& graph);

}  // namespace sol::passes
