#include "sol/codegen/kernel.h"

#include <algorithm>

namespace sol::codegen {

std::vector<int> library_call_arguments(const ir::Graph& graph, const std::vector<int>& cluster) {
    const ir::Node& anchor = graph.nodes()[cluster.front()];
    if (ir::is_custom(anchor.op)) {  // the user's function takes every operand, in order, repeats included
        std::vector<int> arguments = anchor.inputs;
        arguments.push_back(anchor.output);
        return arguments;
    }
    std::vector<int> arguments;
    auto add = [&](int tensor) {
        if (graph.tensor(tensor).kind == ir::TensorKind::Constant) return;
        if (std::find(arguments.begin(), arguments.end(), tensor) == arguments.end()) arguments.push_back(tensor);
    };
    int running = graph.nodes()[cluster.front()].output;
    for (int input : graph.nodes()[cluster.front()].inputs) add(input);
    for (std::size_t k = 1; k < cluster.size(); ++k) {
        const ir::Node& node = graph.nodes()[cluster[k]];
        for (int input : node.inputs)
            if (input != running) add(input);
        running = node.output;
    }
    arguments.push_back(running);
    return arguments;
}

}  // namespace sol::codegen
