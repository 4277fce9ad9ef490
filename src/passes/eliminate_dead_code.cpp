#include "sol/passes/eliminate_dead_code.h"

namespace sol::passes {

void eliminate_dead_code(ir::Graph& graph) {
    std::vector<bool> live(graph.tensor_count(), false);
    for (int id : graph.outputs()) live[id] = true;
    const auto& nodes = graph.nodes();
    std::vector<bool> remove(nodes.size(), false);
    // Walk backwards: a node is live when its output is read by a live node.
    for (std::size_t i = nodes.size(); i-- > 0;) {
        if (!live[nodes[i].output]) {
            remove[i] = true;
            continue;
        }
        for (int input : nodes[i].inputs) live[input] = true;
    }
    graph.remove_nodes(remove);
}

}  // namespace sol::passes
