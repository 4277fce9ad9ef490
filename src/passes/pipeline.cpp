#include "sol/passes/pipeline.h"

#include <functional>
#include <string>

#include "sol/ir/print.h"
#include "sol/ir/verify.h"
#include "sol/log.h"
#include "sol/passes/canonicalize.h"
#include "sol/passes/eliminate_dead_code.h"
#include "sol/passes/fold_batchnorm.h"
#include "sol/passes/fold_identity.h"
#include "sol/passes/fuse_elementwise.h"
#include "sol/passes/lower_batchnorm.h"

namespace sol::passes {

PipelineReport run_pipeline(ir::Graph& graph) {
    PipelineReport report;
    auto step = [&graph](const std::string& name, const std::function<void()>& pass) {
        pass();
        // Cheap next to compilation, and it pins a broken graph on the pass
        // that broke it instead of on a wrong number at run time.
        ir::verify(graph, "after " + name);
        if (log::enabled(log::Level::Debug)) log::debug("after " + name + ":\n" + ir::to_text(graph));
    };
    if (log::enabled(log::Level::Debug)) log::debug("input graph:\n" + ir::to_text(graph));
    ir::verify(graph, "before the first pass");
    step("canonicalize", [&] { canonicalize(graph); });
    step("eliminate_dead_code", [&] { eliminate_dead_code(graph); });
    step("fold_batchnorm", [&] { fold_batchnorm(graph); });
    step("lower_batchnorm", [&] { lower_batchnorm(graph); });
    step("fold_identity", [&] { fold_identity(graph); });
    step("eliminate_dead_code", [&] { eliminate_dead_code(graph); });
    step("fuse_elementwise", [&] { report.fused_nodes = fuse_elementwise(graph); });
    return report;
}

}  // namespace sol::passes
