#include "sol/passes/pipeline.h"

#include <functional>
#include <string>

#include "sol/ir/print.h"
#include "sol/ir/verify.h"
#include "sol/log.h"
#include "sol/passes/canonicalize.h"
#include "sol/passes/eliminate_common_subexpressions.h"
#include "sol/passes/eliminate_dead_code.h"
#include "sol/passes/fold_expand.h"
#include "sol/passes/fold_batchnorm.h"
#include "sol/passes/fold_identity.h"
#include "sol/passes/form_multiply_add.h"
#include "sol/passes/fuse_elementwise.h"
#include "sol/passes/lower_batchnorm.h"
#include "sol/passes/pool_before_pointwise_conv.h"

namespace sol::passes {

namespace {

// Runs `pass` and verifies the graph after it: cheap next to compilation, and
// it pins a broken graph on the pass that broke it instead of on a wrong
// number at run time.
void step(ir::Graph& graph, const std::string& name, const std::function<void()>& pass) {
    pass();
    ir::verify(graph, "after " + name);
    if (log::enabled(log::Level::Debug)) log::debug("after " + name + ":\n" + ir::to_text(graph));
}

void simplify(ir::Graph& graph) {
    if (log::enabled(log::Level::Debug)) log::debug("input graph:\n" + ir::to_text(graph));
    ir::verify(graph, "before the first pass");
    step(graph, "canonicalize", [&] { canonicalize(graph); });
    step(graph, "eliminate_dead_code", [&] { eliminate_dead_code(graph); });
    step(graph, "fold_batchnorm", [&] { fold_batchnorm(graph); });
    step(graph, "lower_batchnorm", [&] { lower_batchnorm(graph); });
    step(graph, "fold_identity", [&] { fold_identity(graph); });
    step(graph, "pool_before_pointwise_conv", [&] { pool_before_pointwise_conv(graph); });
    step(graph, "eliminate_dead_code", [&] { eliminate_dead_code(graph); });
}

}  // namespace

PipelineReport run_pipeline(ir::Graph& graph) {
    PipelineReport report;
    simplify(graph);
    step(graph, "fuse_elementwise", [&] { report.fused_nodes = fuse_elementwise(graph); });
    return report;
}

DifferentiatedGraphs run_training_pipeline(ir::Graph& graph, const std::vector<std::string>& wrt,
                                           int differentiable_outputs) {
    simplify(graph);
    DifferentiatedGraphs graphs = differentiate(graph, wrt, differentiable_outputs);
    ir::verify(graphs.forward, "after autodiff (forward graph)");
    ir::verify(graphs.backward, "after autodiff (backward graph)");
    ir::Graph& backward = graphs.backward;
    if (log::enabled(log::Level::Debug)) log::debug("backward graph:\n" + ir::to_text(backward));
    step(backward, "fold_identity (backward)", [&] { fold_identity(backward); });
    step(backward, "fold_expand (backward)", [&] { fold_expand(backward); });
    step(backward, "eliminate_common_subexpressions (backward)", [&] { eliminate_common_subexpressions(backward); });
    step(backward, "eliminate_dead_code (backward)", [&] { eliminate_dead_code(backward); });
    step(backward, "form_multiply_add (backward)", [&] { form_multiply_add(backward); });
    step(graphs.forward, "fuse_elementwise (forward)", [&] { fuse_elementwise(graphs.forward); });
    step(backward, "fuse_elementwise (backward)", [&] { fuse_elementwise(backward); });
    return graphs;
}

}  // namespace sol::passes
