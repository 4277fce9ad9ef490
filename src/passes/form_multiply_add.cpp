#include "sol/passes/form_multiply_add.h"

#include <utility>

namespace sol::passes {
namespace {

bool single_reader(const ir::Graph& graph, int id) {
    return !graph.is_output(id) && graph.consumers(id).size() == 1;
}

// Whether `id` is computed by an elementwise node whose fused chain (back
// through producers read by nothing else) starts at an elementwise node, not
// at a library-backed anchor.
bool computed_by_elementwise_chain(const ir::Graph& graph, int id) {
    const int producer = graph.tensor(id).producer;
    if (producer < 0 || !ir::has_trait(graph.nodes()[producer].op, ir::Elementwise)) return false;
    for (int at = producer; at >= 0;) {
        const ir::Node& node = graph.nodes()[at];
        if (!ir::has_trait(node.op, ir::Elementwise)) return false;
        int next = -1;
        for (int input : node.inputs) {
            const int from = graph.tensor(input).producer;
            if (from < 0 || !single_reader(graph, input)) continue;
            const ir::Op op = graph.nodes()[from].op;
            if (ir::has_trait(op, ir::Contraction) || ir::has_trait(op, ir::Pooling)) return false;
            if (ir::has_trait(op, ir::Elementwise)) next = from;
        }
        at = next;
    }
    return true;
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
            if (producer >= 0 && graph.nodes()[producer].op == ir::Op::Mul && single_reader(graph, product) &&
                product != addend && graph.tensor(product).shape == shape && graph.tensor(addend).shape == shape &&
                computed_by_elementwise_chain(graph, addend)) {
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
