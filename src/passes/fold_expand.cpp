#include "sol/passes/fold_expand.h"

#include "sol/ir/shape_inference.h"

namespace sol::passes {
namespace {

bool is_expand(const ir::Graph& graph, int id) {
    const int producer = graph.tensor(id).producer;
    return producer >= 0 && graph.nodes()[producer].op == ir::Op::Expand;
}

int expand_input(const ir::Graph& graph, int id) { return graph.nodes()[graph.tensor(id).producer].inputs[0]; }

// The shape of `node`'s result when operand `k` reads `replacement` instead.
ir::Shape broadcast_with(const ir::Graph& graph, const ir::Node& node, std::size_t k, int replacement) {
    ir::Shape shape;
    for (std::size_t i = 0; i < node.inputs.size(); ++i)
        shape = ir::broadcast_shapes(shape, graph.tensor(i == k ? replacement : node.inputs[i]).shape);
    return shape;
}

// Elementwise ops whose value at an element depends on that element's
// operands only (not Dropout: its mask depends on the element's index).
bool broadcasts_freely(ir::Op op) { return ir::has_trait(op, ir::Elementwise) && op != ir::Op::Dropout && op != ir::Op::Expand; }

// op(expand(a), single values...) -> expand(op(a, ...)): the op runs on a's elements.
bool hoist_one(ir::Graph& graph) {
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        const ir::Node node = graph.nodes()[i];
        if (!broadcasts_freely(node.op)) continue;
        int expanded = -1;
        bool others_single = true;
        for (std::size_t k = 0; k < node.inputs.size(); ++k) {
            if (is_expand(graph, node.inputs[k]) && expanded < 0) expanded = static_cast<int>(k);
            else if (ir::element_count(graph.tensor(node.inputs[k]).shape) != 1) others_single = false;
        }
        if (expanded < 0 || !others_single) continue;
        std::vector<int> inputs = node.inputs;
        inputs[expanded] = expand_input(graph, node.inputs[expanded]);
        const int small = graph.add_node(node.op, inputs, node.attrs, node.origin);
        ir::Attributes shape;
        shape.set("shape", graph.tensor(node.output).shape);
        const int full = graph.add_node(ir::Op::Expand, {small}, shape, node.origin);
        graph.replace_uses(node.output, full);
        std::vector<bool> remove(graph.nodes().size(), false);
        remove[i] = true;
        graph.remove_nodes(remove);
        graph.sort_topologically();
        return true;
    }
    return false;
}

}  // namespace

int fold_expand(ir::Graph& graph) {
    while (hoist_one(graph)) {
    }
    int folded = 0;
    for (ir::Node& node : graph.nodes()) {
        if (!broadcasts_freely(node.op)) continue;
        for (std::size_t k = 0; k < node.inputs.size(); ++k) {
            if (!is_expand(graph, node.inputs[k])) continue;
            const int input = expand_input(graph, node.inputs[k]);
            if (broadcast_with(graph, node, k, input) != graph.tensor(node.output).shape) continue;
            node.inputs[k] = input;
            ++folded;
        }
    }
    return folded;
}

}  // namespace sol::passes
