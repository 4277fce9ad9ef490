#include "sol/passes/fold_identity.h"

namespace sol::passes {
namespace {

bool is_constant(const ir::Graph& graph, int id, double value) {
    const ir::Tensor& t = graph.tensor(id);
    return t.kind == ir::TensorKind::Constant && t.value == value;
}

// The operand that survives when the other one is a neutral element, or -1.
int surviving_operand(const ir::Graph& graph, const ir::Node& node) {
    const int a = node.inputs.size() > 0 ? node.inputs[0] : -1;
    const int b = node.inputs.size() > 1 ? node.inputs[1] : -1;
    switch (node.op) {
        case ir::Op::Mul:
            if (is_constant(graph, b, 1.0)) return a;
            if (is_constant(graph, a, 1.0)) return b;
            return -1;
        case ir::Op::Add:
            if (is_constant(graph, b, 0.0)) return a;
            if (is_constant(graph, a, 0.0)) return b;
            return -1;
        case ir::Op::Div: return is_constant(graph, b, 1.0) ? a : -1;
        case ir::Op::Sub: return is_constant(graph, b, 0.0) ? a : -1;
        default: return -1;
    }
}

}  // namespace

void fold_identity(ir::Graph& graph) {
    std::vector<bool> remove(graph.nodes().size(), false);
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        const ir::Node& node = graph.nodes()[i];
        const int kept = surviving_operand(graph, node);
        if (kept < 0) continue;
        const ir::Tensor& result = graph.tensor(node.output);
        // x*1 with x:[3] and 1:[2,3] broadcasts: not an identity.
        if (graph.tensor(kept).shape != result.shape || graph.tensor(kept).dtype != result.dtype) continue;
        graph.replace_uses(node.output, kept);
        remove[i] = true;
    }
    graph.remove_nodes(remove);
}

}  // namespace sol::passes
