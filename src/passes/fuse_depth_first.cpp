#include "sol/passes/fuse_depth_first.h"

#include <algorithm>
#include <map>

namespace sol::passes {
namespace {

bool is_channel_concat(const ir::Graph& graph, const ir::Node& node) {
    return node.op == ir::Op::Concat && node.attrs.get_int("axis") == 1 && graph.tensor(node.output).shape.size() == 4;
}

// One loop nest walks every part of a float concat when the parts share the
// layout (blocked parts hold whole blocks, so each then starts on a block
// boundary).
bool parts_share_layout(const ir::Graph& graph, const ir::Node& concat) {
    const int block = graph.tensor(concat.inputs.front()).channel_block;
    return std::all_of(concat.inputs.begin(), concat.inputs.end(), [&](int part) {
        const ir::Tensor& t = graph.tensor(part);
        return t.channel_block == block && t.shape.size() == 4 && t.dtype == ir::DType::Float32;
    });
}

// A producer cluster the reader can compute at any element: an optional
// channel concat, then elementwise nodes only.
bool computable_inline(const ir::Graph& graph, const std::vector<int>& cluster) {
    for (std::size_t k = 0; k < cluster.size(); ++k) {
        const ir::Node& node = graph.nodes()[cluster[k]];
        const bool concat_first = k == 0 && is_channel_concat(graph, node);
        if (concat_first && !parts_share_layout(graph, node)) return false;
        if (!concat_first && !ir::has_trait(node.op, ir::Elementwise)) return false;
        // Dropout's mask is drawn by the index of the element it writes.
        if (node.op == ir::Op::Dropout) return false;
    }
    return true;
}

bool has_elementwise(const ir::Graph& graph, const std::vector<int>& cluster) {
    return std::any_of(cluster.begin(), cluster.end(),
                       [&](int n) { return ir::has_trait(graph.nodes()[n].op, ir::Elementwise); });
}

// How often a pooling window reads each input element: the producer's chain
// runs that many times per element when computed inside the window.
double reads_per_element(const ir::Graph& graph, const ir::Node& pool) {
    if (pool.op == ir::Op::AdaptiveAvgPool2d) {
        // Disjoint windows when the output divides the input (global pools);
        // otherwise neighbours share at most one row and one column.
        const ir::Shape& in = graph.tensor(pool.inputs[0]).shape;
        const ir::Shape& out = graph.tensor(pool.output).shape;
        return in[2] % out[2] == 0 && in[3] % out[3] == 0 ? 1.0 : 4.0;
    }
    const auto kernel = pool.attrs.get_ints("kernel");
    const auto stride = pool.attrs.get_ints("stride", kernel);
    return static_cast<double>(kernel.front() * kernel.back()) / static_cast<double>(stride.front() * stride.back());
}

}  // namespace

int fuse_depth_first(ir::Graph& graph, const GeneratedCheck& generated) {
    auto& nodes = graph.nodes();
    const std::vector<bool> derived = graph.parameter_derived();
    std::vector<std::vector<int>> readers(graph.tensor_count());
    std::map<int, std::vector<int>> clusters;  // id -> node indices in order
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        for (int input : nodes[i].inputs) readers[input].push_back(static_cast<int>(i));
        clusters[nodes[i].cluster].push_back(static_cast<int>(i));
    }
    // Producers in execution order (a cluster runs where its last node
    // stands). A producer merges into a later cluster, so a chain of merges
    // (concat into the BN chain, that into the pool) sees each merged
    // cluster whole when its turn comes.
    std::vector<int> order;
    for (const auto& [id, members] : clusters) order.push_back(id);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return clusters[a].back() < clusters[b].back(); });
    int merged = 0;
    for (int id : order) {
        const std::vector<int>& producer = clusters.at(id);
        const int result = nodes[producer.back()].output;
        if (readers[result].size() != 1 || graph.is_output(result) || derived[result]) continue;
        const ir::Node& reader = nodes[readers[result][0]];
        std::vector<int>& consumer = clusters.at(reader.cluster);
        // The reader must be the consumer's first node, reading the value
        // as the element it computes (no broadcasting it up).
        if (consumer.front() != readers[result][0] || !computable_inline(graph, producer) ||
            !generated(graph, producer) || !generated(graph, consumer))
            continue;
        bool fits = false;
        if (ir::has_trait(reader.op, ir::Elementwise))
            // An elementwise reader takes a lone concat; elementwise
            // producers were chained into it by fuse_elementwise where they could.
            fits = producer.size() == 1 && is_channel_concat(graph, nodes[producer.front()]) &&
                   graph.tensor(reader.output).shape == graph.tensor(result).shape;
        else if (ir::has_trait(reader.op, ir::Pooling) && reader.inputs[0] == result)
            fits = !has_elementwise(graph, producer) || reads_per_element(graph, reader) <= 4.0;
        else if ((reader.op == ir::Op::Mean || reader.op == ir::Op::Sum) && reader.inputs[0] == result)
            // A sum reads each element once: a product summed (BatchNorm's
            // statistics and gradients) is never stored.
            fits = !is_channel_concat(graph, nodes[producer.front()]);
        if (!fits) continue;
        for (int n : producer) nodes[n].cluster = reader.cluster;
        consumer.insert(consumer.begin(), producer.begin(), producer.end());  // every producer node comes first
        clusters.erase(id);
        ++merged;
    }
    return merged;
}

}  // namespace sol::passes
