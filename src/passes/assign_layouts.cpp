#include "sol/passes/assign_layouts.h"

#include <algorithm>
#include <map>

#include "sol/error.h"

namespace sol::passes {

int assign_layouts(ir::Graph& graph, const std::vector<int>& blocks, const BlockedAccess& accepts,
                   const LayoutCheck& check) {
    std::map<int, std::vector<int>> clusters;  // cluster id -> node indices, anchor first
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        const int cluster = graph.nodes()[i].cluster;
        if (cluster < 0) throw Error("internal: assign_layouts runs after fusion; node " + std::to_string(i) + " has no kernel");
        clusters[cluster].push_back(static_cast<int>(i));
    }
    const std::vector<bool> derived = graph.parameter_derived();
    int blocked = 0;
    for (const auto& [id, members] : clusters) {
        const int result = graph.nodes()[members.back()].output;
        const ir::Tensor& t = graph.tensor(result);
        // Blocking pays for images with channels to spare; a [N, C, 1, 1]
        // tensor has the same bytes either way, so it stays row-major.
        // Weight-only values are read by library kernels' weight reorders,
        // which expect the framework's layout.
        if (t.shape.size() != 4 || t.dtype != ir::DType::Float32 || t.shape[2] * t.shape[3] == 1 ||
            graph.is_output(result) || derived[result])
            continue;
        auto fits = std::find_if(blocks.begin(), blocks.end(),
                                 [&t](int b) { return b == kChannelsLast || (b > 0 && t.shape[1] % b == 0); });
        if (fits == blocks.end()) continue;
        const int block = *fits == kChannelsLast ? static_cast<int>(t.shape[1]) : *fits;
        bool all = accepts(graph, members, result);
        for (int reader : graph.consumers(result)) {
            if (!all) break;
            all = accepts(graph, clusters.at(graph.nodes()[reader].cluster), result);
        }
        if (!all) continue;
        graph.set_channel_block(result, block);
        ++blocked;
    }
    // Unblocking only ever removes blocked tensors, so this ends.
    for (bool changed = blocked > 0; changed;) {
        changed = false;
        for (const auto& [id, members] : clusters) {
            if (check(graph, members)) continue;
            std::vector<int> tensors;
            for (int member : members) {
                const ir::Node& node = graph.nodes()[member];
                tensors.insert(tensors.end(), node.inputs.begin(), node.inputs.end());
                tensors.push_back(node.output);
            }
            for (int t : tensors)
                if (graph.tensor(t).channel_block != 0) {
                    graph.set_channel_block(t, 0);
                    --blocked;
                    changed = true;
                }
        }
    }
    return blocked;
}

}  // namespace sol::passes
