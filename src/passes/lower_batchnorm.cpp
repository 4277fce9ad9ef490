#include "sol/passes/lower_batchnorm.h"

namespace sol::passes {

void lower_batchnorm(ir::Graph& graph) {
    std::vector<std::size_t> found;
    for (std::size_t i = 0; i < graph.nodes().size(); ++i)
        if (graph.nodes()[i].op == ir::Op::BatchNorm) found.push_back(i);
    if (found.empty()) return;
    std::vector<bool> remove(graph.nodes().size(), false);
    for (std::size_t index : found) {
        const ir::Node batch_norm = graph.nodes()[index];  // copy: the vector grows
        const int x = batch_norm.inputs[0], mean = batch_norm.inputs[1], var = batch_norm.inputs[2];
        const int gamma = batch_norm.inputs[3], beta = batch_norm.inputs[4];
        const ir::Shape& shape = graph.tensor(x).shape;
        auto add = [&](ir::Op op, std::vector<int> inputs, ir::Attributes attrs = {}) {
            return graph.add_node(op, std::move(inputs), std::move(attrs), batch_norm.origin);
        };
        // Per-channel vectors become [C, 1, ..., 1] so they broadcast over NC...
        ir::Attributes channel_shape;
        std::vector<std::int64_t> broadcast(shape.size() - 1, 1);
        broadcast[0] = shape[1];
        channel_shape.set("shape", broadcast);

        const int eps = graph.add_constant(batch_norm.attrs.get_float("eps"), ir::DType::Float32);
        const int scale = add(ir::Op::Mul, {add(ir::Op::Rsqrt, {add(ir::Op::Add, {var, eps})}), gamma});
        const int shift = add(ir::Op::Sub, {beta, add(ir::Op::Mul, {mean, scale})});
        const int scaled = add(ir::Op::Mul, {x, add(ir::Op::Reshape, {scale}, channel_shape)});
        const int result = add(ir::Op::Add, {scaled, add(ir::Op::Reshape, {shift}, channel_shape)});
        graph.replace_uses(batch_norm.output, result);
        remove[index] = true;
    }
    graph.remove_nodes(remove);
    graph.sort_topologically();
}

}  // namespace sol::passes
