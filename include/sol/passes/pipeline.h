// The optimization pipeline: a straight list of passes, the graph verified
// after each one. SOL_LOG=debug prints the graph after every pass.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

struct PipelineReport {
    int fused_nodes = 0;  // nodes that run inside another node's kernel
};

PipelineReport run_pipeline(ir::Graph& graph);

}  // namespace sol::passes
