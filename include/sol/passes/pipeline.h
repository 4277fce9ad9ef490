// The optimization pipeline: a straight list of passes, the graph verified
// after each one. SOL_LOG=debug prints the graph after every pass.
#pragma once

#include <string>
#include <vector>

#include "sol/ir/graph.h"
#include "sol/passes/autodiff.h"

namespace sol::passes {

struct PipelineReport {
    int fused_nodes = 0;  // nodes that run inside another node's kernel
};

PipelineReport run_pipeline(ir::Graph& graph);

// Training: the same simplifications, then autodiff (gradients with respect
// to the parameters and inputs named in `wrt`), then the forward and the
// backward graph each fused as any graph.
DifferentiatedGraphs run_training_pipeline(ir::Graph& graph, const std::vector<std::string>& wrt,
                                           int differentiable_outputs = -1);

}  // namespace sol::passes
