#include "sol/passes/fold_batchnorm.h"

namespace sol::passes {
namespace {

struct Candidate {
    std::size_t batch_norm;  // node index
    std::size_t conv;        // node index
};

std::vector<Candidate> find_candidates(const ir::Graph& graph) {
    std::vector<Candidate> found;
    const auto& nodes = graph.nodes();
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i].op != ir::Op::BatchNorm) continue;
        const ir::Tensor& source = graph.tensor(nodes[i].inputs[0]);
        if (source.producer < 0 || nodes[source.producer].op != ir::Op::Conv2d) continue;
        // The unnormalized conv result must not be needed elsewhere.
        if (graph.consumers(source.id).size() != 1 || graph.is_output(source.id)) continue;
        found.push_back({i, static_cast<std::size_t>(source.producer)});
    }
    return found;
}

}  // namespace

void fold_batchnorm(ir::Graph& graph) {
    const std::vector<Candidate> candidates = find_candidates(graph);
    std::vector<bool> remove(graph.nodes().size(), false);
    for (const Candidate& candidate : candidates) {
        // Copies: add_node below grows the node vector.
        const ir::Node batch_norm = graph.nodes()[candidate.batch_norm];
        const ir::Node conv = graph.nodes()[candidate.conv];
        const int mean = batch_norm.inputs[1], var = batch_norm.inputs[2];
        const int gamma = batch_norm.inputs[3], beta = batch_norm.inputs[4];
        const std::int64_t channels = graph.tensor(conv.output).shape[1];
        const std::string origin = batch_norm.origin + " [folded into conv]";
        auto add = [&](ir::Op op, std::vector<int> inputs, ir::Attributes attrs = {}) {
            return graph.add_node(op, std::move(inputs), std::move(attrs), origin);
        };

        // scale = gamma / sqrt(var + eps), per output channel.
        const int eps = graph.add_constant(batch_norm.attrs.get_float("eps"), ir::DType::Float32);
        const int inv_std = add(ir::Op::Rsqrt, {add(ir::Op::Add, {var, eps})});
        const int scale = add(ir::Op::Mul, {inv_std, gamma});
        ir::Attributes to_weight_shape;
        to_weight_shape.set("shape", std::vector<std::int64_t>{channels, 1, 1, 1});
        const int weight = add(ir::Op::Mul, {conv.inputs[1], add(ir::Op::Reshape, {scale}, to_weight_shape)});
        // shift = beta - mean * scale (+ bias * scale when the conv has a bias).
        int shift = add(ir::Op::Sub, {beta, add(ir::Op::Mul, {mean, scale})});
        if (conv.inputs.size() == 3) shift = add(ir::Op::Add, {add(ir::Op::Mul, {conv.inputs[2], scale}), shift});

        ir::Node& folded = graph.nodes()[candidate.conv];
        folded.inputs = {conv.inputs[0], weight, shift};
        graph.replace_uses(batch_norm.output, conv.output);
        remove[candidate.batch_norm] = true;
    }
    if (candidates.empty()) return;
    graph.remove_nodes(remove);
    graph.sort_topologically();  // the folding nodes were appended after the conv
}

}  // namespace sol::passes
