#include "sol/passes/form_multiply_add.h"

#include <utility>

namespace sol::passes {
namespace {

bool single_reader(const ir::Graph& graph, int id) {
    return !graph.is_output(id) && graph.consumers(id).size() == 1;
}

// Whether the fused chain that `id` would continue (back through producers
// read by nothing else) starts at a convolution, matrix product or pooling:
// a library call whose post-ops could not take mul_add.
bool chain_starts_at_library_anchor(const ir::Graph& graph, int id) {
    for (int at = id; at >= 0 && single_reader(graph, at);) {
        const int producer = graph.tensor(at).producer;
        if (producer < 0) return false;
        const ir::Node& node = graph.nodes()[producer];
        if (ir::has_trait(node.op, ir::Contraction) || ir::has_trait(node.op, ir::Pooling)) return true;
        if (!ir::has_trait(node.op, ir::Elementwise)) return false;
        at = -1;
        for (int input : node.inputs)
            if (graph.tensor(input).producer >= 0 && single_reader(graph, input)) at = input;
    }
    return false;
}

}  // namespace

int form_multiply_add(ir::Graph& graph) {
    // Found first, rewritten together: one topological sort, and an addend
    // that is itself a rewritten add is redirected by replace_uses below.
    std::vector<std::pair<int, int>> found;  // (add node, operand index of the product)
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        const ir::Node& add = graph.nodes()[i];
        if (add.op != ir::Op::Add) continue;
        const ir::Shape& shape = graph.tensor(add.output).shape;
        for (int k = 0; k < 2; ++k) {
            const int product = add.inputs[k], addend = add.inputs[1 - k];
            const int producer = graph.tensor(product).producer;
            if (producer < 0 || graph.nodes()[producer].op != ir::Op::Mul || !single_reader(graph, product) ||
                product == addend || graph.tensor(product).shape != shape || graph.tensor(addend).shape != shape)
                continue;
            // The addend is itself computed by an elementwise chain (else the add's chain runs
            // through the product already), and no operand continues a library call's chain.
            const ir::Node& mul = graph.nodes()[producer];
            const int addend_producer = graph.tensor(addend).producer;
            if (addend_producer >= 0 && ir::has_trait(graph.nodes()[addend_producer].op, ir::Elementwise) &&
                !chain_starts_at_library_anchor(graph, addend) &&
                !chain_starts_at_library_anchor(graph, mul.inputs[0]) &&
                !chain_starts_at_library_anchor(graph, mul.inputs[1])) {
                found.emplace_back(static_cast<int>(i), k);
                break;
            }
        }
    }
    if (found.empty()) return 0;
    std::vector<bool> remove(graph.nodes().size(), false);
    std::vector<std::pair<int, int>> replaced;  // (old add result, mul_add result)
    for (const auto& [index, k] : found) {
        const ir::Node add = graph.nodes()[index];  // a copy: add_node may move the node list
        const int producer = graph.tensor(add.inputs[k]).producer;
        const ir::Node mul = graph.nodes()[producer];
        replaced.emplace_back(add.output, graph.add_node(ir::Op::MulAdd, {mul.inputs[0], mul.inputs[1], add.inputs[1 - k]},
                                                         {}, add.origin));
        remove[index] = remove[producer] = true;
    }
    for (const auto& [from, to] : replaced) graph.replace_uses(from, to);
    graph.remove_nodes(remove);
    graph.sort_topologically();
    return static_cast<int>(found.size());
}

}  // namespace sol::passes
