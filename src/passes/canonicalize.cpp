#include "sol/passes/canonicalize.h"

#include <algorithm>
#include <limits>

namespace sol::passes {
namespace {

std::int64_t positive_axis(std::int64_t axis, std::size_t rank) {
    return axis < 0 ? axis + static_cast<std::int64_t>(rank) : axis;
}

}  // namespace

void canonicalize(ir::Graph& graph) {
    std::vector<bool> remove(graph.nodes().size(), false);
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        ir::Node& node = graph.nodes()[i];
        const std::size_t rank = graph.tensor(node.inputs[0]).shape.size();
        switch (node.op) {
            // ReLU6 and hardtanh pass no gradient at their bounds, torch.clamp
            // does: the clamp remembers which rule its backward follows.
            case ir::Op::Relu6:
                node.op = ir::Op::Clamp;
                node.attrs.set("min", 0.0);
                node.attrs.set("max", 6.0);
                node.attrs.set("inclusive", std::int64_t{0});
                break;
            case ir::Op::Hardtanh:
                node.op = ir::Op::Clamp;
                node.attrs.set("min", node.attrs.get_float("min", -1.0));
                node.attrs.set("max", node.attrs.get_float("max", 1.0));
                node.attrs.set("inclusive", std::int64_t{0});
                break;
            case ir::Op::Clamp:
                // Missing bounds mean "unbounded" so emitters need no special case.
                node.attrs.set("min", node.attrs.get_float("min", -std::numeric_limits<double>::infinity()));
                node.attrs.set("max", node.attrs.get_float("max", std::numeric_limits<double>::infinity()));
                break;
            case ir::Op::Concat:
            case ir::Op::Slice:
            case ir::Op::Softmax:
            case ir::Op::LogSoftmax:
                node.attrs.set("axis", positive_axis(node.attrs.get_int("axis"), rank));
                break;
            case ir::Op::Mean:
            case ir::Op::Sum: {
                auto axes = node.attrs.get_ints("axes");
                for (auto& axis : axes) axis = positive_axis(axis, rank);
                std::sort(axes.begin(), axes.end());
                node.attrs.set("axes", axes);
                break;
            }
            case ir::Op::Permute: {
                auto dims = node.attrs.get_ints("dims");
                for (auto& dim : dims) dim = positive_axis(dim, rank);
                node.attrs.set("dims", dims);
                break;
            }
            case ir::Op::Identity:
                graph.replace_uses(node.output, node.inputs[0]);
                remove[i] = true;
                break;
            default: break;
        }
    }
    graph.remove_nodes(remove);
}

}  // namespace sol::passes
