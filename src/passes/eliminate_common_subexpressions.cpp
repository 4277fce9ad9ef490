#include "sol/passes/eliminate_common_subexpressions.h"

#include <map>
#include <tuple>

namespace sol::passes {

int eliminate_common_subexpressions(ir::Graph& graph) {
    // (op, operands) -> earlier nodes with them; attributes compared exactly.
    std::map<std::pair<ir::Op, std::vector<int>>, std::vector<int>> seen;
    std::vector<bool> remove(graph.nodes().size(), false);
    int removed = 0;
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        const ir::Node& node = graph.nodes()[i];  // operands already point at the survivors
        if (ir::is_custom(node.op)) continue;
        std::vector<int>& candidates = seen[{node.op, node.inputs}];
        int same = -1;
        for (int earlier : candidates)
            if (graph.nodes()[earlier].attrs == node.attrs) same = earlier;
        if (same < 0) {
            candidates.push_back(static_cast<int>(i));
            continue;
        }
        graph.replace_uses(node.output, graph.nodes()[same].output);
        remove[i] = true;
        ++removed;
    }
    graph.remove_nodes(remove);
    return removed;
}

}  // namespace sol::passes
