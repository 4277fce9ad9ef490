#include "sol/passes/pool_before_pointwise_conv.h"

#include <cstdint>
#include <string>
#include <vector>

namespace sol::passes {
namespace {

// A pair attribute (stride=[sh, sw]; one value means both) whose every entry
// is `value`, or that is missing and defaults to it.
bool every_entry_is(const ir::Attributes& attrs, const std::string& key, std::int64_t value) {
    for (std::int64_t entry : attrs.get_ints(key, {value}))
        if (entry != value) return false;
    return true;
}

bool is_pointwise_conv(const ir::Graph& graph, const ir::Node& node) {
    if (node.op != ir::Op::Conv2d) return false;
    const ir::Shape& weight = graph.tensor(node.inputs[1]).shape;
    return weight.size() == 4 && weight[2] == 1 && weight[3] == 1 && every_entry_is(node.attrs, "stride", 1) &&
           every_entry_is(node.attrs, "padding", 0);
}

// Whether every output of the pool is the plain mean of the input pixels in
// its window: the weights sum to one, so a per-pixel bias passes through.
bool is_plain_average(const ir::Node& node) {
    if (node.op == ir::Op::AdaptiveAvgPool2d) return true;
    return node.op == ir::Op::AvgPool2d && every_entry_is(node.attrs, "padding", 0) &&
           node.attrs.get_int("divisor_override", 0) == 0;
}

// Window area of a pool, for the cost of pooling: an adaptive pool's windows
// cover the input once.
std::int64_t window_area(const ir::Node& pool, const ir::Shape& in, const ir::Shape& out) {
    if (pool.op == ir::Op::AdaptiveAvgPool2d) return (in[2] * in[3] + out[2] * out[3] - 1) / (out[2] * out[3]);
    std::vector<std::int64_t> kernel = pool.attrs.get_ints("kernel");
    if (kernel.size() == 1) kernel.push_back(kernel[0]);
    return kernel[0] * kernel[1];
}

// The convolution's multiply-adds saved against the additions gained by
// pooling the input's channels instead of the output's.
bool pays_off(const ir::Graph& graph, const ir::Node& conv, const ir::Node& pool) {
    const ir::Shape& in = graph.tensor(conv.inputs[0]).shape;
    const ir::Shape& conv_out = graph.tensor(conv.output).shape;
    const ir::Shape& pooled = graph.tensor(pool.output).shape;
    const std::int64_t pixels_before = in[2] * in[3], pixels_after = pooled[2] * pooled[3];
    if (pixels_after >= pixels_before) return false;
    const std::int64_t weights = graph.tensor(conv.inputs[1]).shape[0] * graph.tensor(conv.inputs[1]).shape[1];
    const std::int64_t saved = weights * (pixels_before - pixels_after);
    const std::int64_t extra_channels = in[1] > conv_out[1] ? in[1] - conv_out[1] : 0;
    return saved > window_area(pool, in, pooled) * pixels_after * extra_channels;
}

}  // namespace

int pool_before_pointwise_conv(ir::Graph& graph) {
    std::vector<bool> remove(graph.nodes().size(), false);
    int moved = 0;
    const std::size_t original_nodes = graph.nodes().size();
    for (std::size_t i = 0; i < original_nodes; ++i) {
        const ir::Node pool = graph.nodes()[i];  // a copy: add_node below grows the node vector
        if (!is_plain_average(pool)) continue;
        const int producer = graph.tensor(pool.inputs[0]).producer;
        if (producer < 0 || remove[producer]) continue;
        const ir::Node conv = graph.nodes()[producer];
        if (!is_pointwise_conv(graph, conv)) continue;
        if (graph.consumers(conv.output).size() != 1 || graph.is_output(conv.output)) continue;
        if (!pays_off(graph, conv, pool)) continue;

        const int pooled = graph.add_node(pool.op, {conv.inputs[0]}, pool.attrs, pool.origin);
        std::vector<int> conv_inputs = conv.inputs;
        conv_inputs[0] = pooled;
        const int result = graph.add_node(ir::Op::Conv2d, conv_inputs, conv.attrs, conv.origin);
        graph.replace_uses(pool.output, result);
        remove[i] = remove[producer] = true;
        ++moved;
    }
    if (moved == 0) return 0;
    remove.resize(graph.nodes().size(), false);
    graph.remove_nodes(remove);
    graph.sort_topologically();  // the new pool and conv were appended at the end
    return moved;
}

}  // namespace sol::passes
