#include "sol/passes/merge_depthwise_into_pointwise.h"

#include <map>

namespace sol::passes {
namespace {

bool is_pointwise_conv(const ir::Graph& graph, const ir::Node& node) {
    if (node.op != ir::Op::Conv2d) return false;
    const ir::Shape& weight = graph.tensor(node.inputs[1]).shape;
    return weight[2] == 1 && weight[3] == 1;
}

// A convolution with one group per channel, reading `input`.
bool is_depthwise_conv_of(const ir::Graph& graph, const ir::Node& node, int input) {
    return node.op == ir::Op::Conv2d && node.inputs[0] == input && graph.tensor(input).shape.size() == 4 &&
           node.attrs.get_int("groups", 1) == graph.tensor(input).shape[1] && graph.tensor(input).shape[1] > 1;
}

}  // namespace

int merge_depthwise_into_pointwise(ir::Graph& graph, const FusedPairCheck& runs_fused) {
    auto& nodes = graph.nodes();
    const std::vector<bool> derived = graph.parameter_derived();
    std::map<int, std::vector<int>> clusters;  // id -> node indices in order
    for (std::size_t i = 0; i < nodes.size(); ++i) clusters[nodes[i].cluster].push_back(static_cast<int>(i));
    int merged = 0;
    for (auto& [id, pointwise] : clusters) {
        if (pointwise.empty() || !is_pointwise_conv(graph, nodes[pointwise.front()])) continue;
        const int result = nodes[pointwise.back()].output;
        const std::vector<int> readers = graph.consumers(result);
        if (readers.size() != 1 || graph.is_output(result) || derived[result]) continue;
        const ir::Node& reader = nodes[readers.front()];
        std::vector<int>& depthwise = clusters.at(reader.cluster);
        // The depthwise convolution must anchor its own cluster.
        if (depthwise.front() != readers.front() || !is_depthwise_conv_of(graph, reader, result)) continue;
        std::vector<int> pair = pointwise;
        pair.insert(pair.end(), depthwise.begin(), depthwise.end());
        if (!runs_fused(graph, pair)) continue;
        for (int n : depthwise) nodes[n].cluster = id;
        pointwise = std::move(pair);
        depthwise.clear();  // merged; its id stays in the map, empty
        ++merged;
    }
    return merged;
}

}  // namespace sol::passes
