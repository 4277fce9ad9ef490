#include "sol/passes/fuse_elementwise.h"

#include <algorithm>

namespace sol::passes {
namespace {

bool can_anchor(ir::Op op) {
    return ir::has_trait(op, ir::Contraction) || ir::has_trait(op, ir::Pooling) ||
           ir::has_trait(op, ir::Elementwise);
}

}  // namespace

int fuse_elementwise(ir::Graph& graph) {
    auto& nodes = graph.nodes();
    const std::vector<bool> derived = graph.parameter_derived();
    for (ir::Node& node : nodes) node.cluster = -1;
    int next_cluster = 0;
    int fused = 0;
    for (std::size_t anchor = 0; anchor < nodes.size(); ++anchor) {
        if (nodes[anchor].cluster >= 0) continue;
        const int cluster = next_cluster++;
        nodes[anchor].cluster = cluster;
        if (!can_anchor(nodes[anchor].op)) continue;
        const ir::Tensor& anchor_result = graph.tensor(nodes[anchor].output);
        // Follow the chain while the running value has exactly one reader that
        // is elementwise and keeps the shape: then the value never needs memory.
        // (A reader may take it twice: x * x.)
        int value = anchor_result.id;
        while (!graph.is_output(value)) {
            const std::vector<int> readers = graph.consumers(value);
            if (readers.empty() || std::any_of(readers.begin(), readers.end(), [&](int r) { return r != readers[0]; }))
                break;
            ir::Node& next = nodes[readers[0]];
            const ir::Tensor& next_result = graph.tensor(next.output);
            if (!ir::has_trait(next.op, ir::Elementwise) || next.cluster >= 0 ||
                next_result.shape != anchor_result.shape || next_result.dtype != anchor_result.dtype ||
                derived[next.output] != derived[anchor_result.id])
                break;
            next.cluster = cluster;
            ++fused;
            value = next.output;
        }
    }
    return fused;
}

}  // namespace sol::passes
