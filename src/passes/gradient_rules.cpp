#include "gradient_rules.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "sol/error.h"

namespace sol::passes {
namespace {

// Appends nodes that carry the forward node's origin, so a failing backward
// kernel still points at the user's layer.
class Builder {
public:
    Builder(ir::Graph& graph, const ir::Node& node) : graph_(graph), origin_(node.origin + " (backward)") {}

    int op(ir::Op op, std::vector<int> inputs, ir::Attributes attrs = {}) {
        return graph_.add_node(op, std::move(inputs), std::move(attrs), origin_);
    }
    int constant(double value) { return graph_.add_constant(value, ir::DType::Float32); }
    // A copy: adding nodes may move the graph's tensors, and rules keep
    // shapes across the nodes they add.
    ir::Shape shape(int tensor) const { return graph_.tensor(tensor).shape; }

    int reshape(int tensor, const ir::Shape& shape) {
        if (this->shape(tensor) == shape) return tensor;
        ir::Attributes attrs;
        attrs.set("shape", std::vector<std::int64_t>(shape.begin(), shape.end()));
        return op(ir::Op::Reshape, {tensor}, attrs);
    }
    int permute(int tensor, std::vector<std::int64_t> dims) {
        ir::Attributes attrs;
        attrs.set("dims", std::move(dims));
        return op(ir::Op::Permute, {tensor}, attrs);
    }
    int sum(int tensor, std::vector<std::int64_t> axes, bool keepdim) {
        ir::Attributes attrs;
        attrs.set("axes", std::move(axes));
        attrs.set("keepdim", std::int64_t{keepdim ? 1 : 0});
        return op(ir::Op::Sum, {tensor}, attrs);
    }
    int expand(int tensor, const ir::Shape& shape) {
        if (this->shape(tensor) == shape) return tensor;
        ir::Attributes attrs;
        attrs.set("shape", std::vector<std::int64_t>(shape.begin(), shape.end()));
        return op(ir::Op::Expand, {tensor}, attrs);
    }

    // The gradient of a broadcast operand: summed over the axes it was
    // broadcast along, in its own shape.
    int unbroadcast(int gradient, const ir::Shape& operand) {
        const ir::Shape from = shape(gradient);
        if (from == operand) return gradient;
        const std::size_t lead = from.size() - operand.size();
        std::vector<std::int64_t> axes;
        for (std::size_t d = 0; d < from.size(); ++d)
            if (d < lead || (operand[d - lead] == 1 && from[d] != 1)) axes.push_back(static_cast<std::int64_t>(d));
        return reshape(axes.empty() ? gradient : sum(gradient, axes, true), operand);
    }

private:
    ir::Graph& graph_;
    std::string origin_;
};

std::vector<std::int64_t> reduced_axes(const ir::Node& node, std::size_t rank) {
    std::vector<std::int64_t> axes = node.attrs.get_ints("axes");
    for (std::int64_t& axis : axes)
        if (axis < 0) axis += static_cast<std::int64_t>(rank);
    return axes;
}

// `g` where x lies within [lo, hi] (inclusive; NaN gets 0) or (lo, hi) (not;
// NaN passes). `outside`: the complement, where clamp_grad would give 0.
int clamp_gradient(Builder& b, int g, int x, double lo, double hi, bool inclusive, bool outside = false) {
    ir::Attributes attrs;
    attrs.set("min", lo);
    attrs.set("max", hi);
    attrs.set("inclusive", std::int64_t{inclusive ? 1 : 0});
    const int inside = b.op(ir::Op::ClampGrad, {g, x}, attrs);
    return outside ? b.op(ir::Op::Sub, {g, inside}) : inside;
}

// `g` strictly inside (lo, hi), 0 on the bounds and for NaN: the inclusive
// rule on the nearest floats inside the bounds.
int strictly_inside(Builder& b, int g, int x, float lo, float hi) {
    return clamp_gradient(b, g, x, std::nextafter(lo, hi), std::nextafter(hi, lo), true);
}

// The input gradient of a slice: g where the slice took its elements,
// zeros elsewhere, as a concat along the axis. A step above 1 first puts
// step - 1 zeros after each element of g: [.., n, ..] -> [.., n, step, ..]
// -> [.., n * step, ..], cut to the slice's span.
int slice_gradient(Builder& b, int g, const ir::Node& node, const ir::Shape& x) {
    std::int64_t axis = node.attrs.get_int("axis");
    if (axis < 0) axis += static_cast<std::int64_t>(x.size());
    const std::int64_t start = node.attrs.get_int("start"), end = node.attrs.get_int("end");
    const std::int64_t step = node.attrs.get_int("step", 1);
    auto zeros = [&b](const ir::Shape& shape) { return b.expand(b.constant(0.0), shape); };
    auto concat = [&b](std::vector<int> parts, std::int64_t along) {
        if (parts.size() == 1) return parts.front();
        ir::Attributes attrs;
        attrs.set("axis", along);
        return b.op(ir::Op::Concat, std::move(parts), attrs);
    };
    int spread = g;
    if (step > 1) {
        ir::Shape column = b.shape(g);
        const std::int64_t n = column[axis];
        column.insert(column.begin() + axis + 1, 1);
        ir::Shape gaps = column;
        gaps[axis + 1] = step - 1;
        ir::Shape flat = b.shape(g);
        flat[axis] = n * step;
        spread = b.reshape(concat({b.reshape(g, column), zeros(gaps)}, axis + 1), flat);
        if (n * step > end - start) {
            ir::Attributes cut;
            cut.set("axis", axis);
            cut.set("start", std::int64_t{0});
            cut.set("end", end - start);
            cut.set("step", std::int64_t{1});
            spread = b.op(ir::Op::Slice, {spread}, cut);
        }
    }
    std::vector<int> parts;
    ir::Shape side = x;
    if (start > 0) {
        side[axis] = start;
        parts.push_back(zeros(side));
    }
    parts.push_back(spread);
    if (end < x[axis]) {
        side[axis] = x[axis] - end;
        parts.push_back(zeros(side));
    }
    return concat(parts, axis);
}

}  // namespace

std::vector<int> input_gradients(ir::Graph& graph, const ir::Node& node, int g, const std::vector<bool>& wanted) {
    Builder b(graph, node);
    // Copies: adding nodes may move the graph's tensor storage.
    const std::vector<int> in = node.inputs;
    const int y = node.output;
    std::vector<int> result(in.size(), -1);
    auto set = [&](std::size_t i, auto&& compute) {
        if (wanted[i] && graph.tensor(in[i]).dtype == ir::DType::Float32) result[i] = compute();
    };
    using ir::Op;
    switch (node.op) {
        case Op::Add:
            set(0, [&] { return b.unbroadcast(g, b.shape(in[0])); });
            set(1, [&] { return b.unbroadcast(g, b.shape(in[1])); });
            break;
        case Op::Sub:
            set(0, [&] { return b.unbroadcast(g, b.shape(in[0])); });
            set(1, [&] { return b.unbroadcast(b.op(Op::Neg, {g}), b.shape(in[1])); });
            break;
        case Op::Mul:
            set(0, [&] { return b.unbroadcast(b.op(Op::Mul, {g, in[1]}), b.shape(in[0])); });
            set(1, [&] { return b.unbroadcast(b.op(Op::Mul, {g, in[0]}), b.shape(in[1])); });
            break;
        case Op::MulAdd:  // a * b + c
            set(0, [&] { return b.unbroadcast(b.op(Op::Mul, {g, in[1]}), b.shape(in[0])); });
            set(1, [&] { return b.unbroadcast(b.op(Op::Mul, {g, in[0]}), b.shape(in[1])); });
            set(2, [&] { return b.unbroadcast(g, b.shape(in[2])); });
            break;
        case Op::Div:  // d(a/b)/da = 1/b, d(a/b)/db = -(a/b)/b
            set(0, [&] { return b.unbroadcast(b.op(Op::Div, {g, in[1]}), b.shape(in[0])); });
            set(1, [&] {
                return b.unbroadcast(b.op(Op::Neg, {b.op(Op::Div, {b.op(Op::Mul, {g, y}), in[1]})}), b.shape(in[1]));
            });
            break;
        case Op::Neg: set(0, [&] { return b.op(Op::Neg, {g}); }); break;
        case Op::Relu: set(0, [&] { return b.op(Op::ReluGrad, {g, y}); }); break;
        case Op::Dropout: set(0, [&] { return b.op(Op::Dropout, {g, in[1]}, node.attrs); }); break;  // the same mask
        case Op::Clamp:
            set(0, [&] {
                ir::Attributes attrs;
                const double lo = node.attrs.get_float("min"), hi = node.attrs.get_float("max");
                const bool inclusive = node.attrs.get_int("inclusive", 1) != 0;
                attrs.set("min", lo);
                attrs.set("max", hi);
                attrs.set("inclusive", std::int64_t{inclusive});
                // Excluded bounds (ReLU6, hardtanh) give the same mask from the
                // output as from the input (y <= lo exactly where x <= lo, NaN
                // stays NaN), and the output is what the next layer's gradient
                // keeps anyway: the input is then neither saved nor recomputed.
                const bool from_output = !inclusive && lo < hi;
                return b.op(Op::ClampGrad, {g, from_output ? y : in[0]}, attrs);
            });
            break;
        case Op::Sigmoid:  // y (1 - y)
            set(0, [&] { return b.op(Op::Mul, {g, b.op(Op::Mul, {y, b.op(Op::Sub, {b.constant(1.0), y})})}); });
            break;
        case Op::Silu:  // s (1 + x (1 - s)) with s = sigmoid(x)
            set(0, [&] {
                const int s = b.op(Op::Sigmoid, {in[0]});
                const int inner = b.op(Op::Add, {b.constant(1.0), b.op(Op::Mul, {in[0], b.op(Op::Sub, {b.constant(1.0), s})})});
                return b.op(Op::Mul, {g, b.op(Op::Mul, {s, inner})});
            });
            break;
        case Op::Hardsigmoid:  // 1/6 strictly inside (-3, 3), 0 elsewhere and for NaN, as PyTorch
            set(0, [&] { return b.op(Op::Mul, {strictly_inside(b, g, in[0], -3.0f, 3.0f), b.constant(1.0 / 6.0)}); });
            break;
        case Op::Hardswish:  // x/3 + 1/2 inside (-3, 3), 1 from 3 up (and for NaN), 0 to -3, as PyTorch
            set(0, [&] {
                const int slope = b.op(Op::Add, {b.op(Op::Mul, {in[0], b.constant(1.0 / 3.0)}), b.constant(0.5)});
                // Masked after the product, so a NaN x (slope NaN) contributes 0 here.
                const int middle = strictly_inside(b, b.op(Op::Mul, {g, slope}), in[0], -3.0f, 3.0f);
                // g where x >= 3 or NaN: the complement of x in [-inf, the float below 3].
                const int above = clamp_gradient(b, g, in[0], -std::numeric_limits<double>::infinity(),
                                                 std::nextafter(3.0f, 0.0f), true, true);
                return b.op(Op::Add, {middle, above});
            });
            break;
        case Op::Gelu: set(0, [&] { return b.op(Op::GeluGrad, {g, in[0]}, node.attrs); }); break;
        case Op::Slice: set(0, [&] { return slice_gradient(b, g, node, b.shape(in[0])); }); break;
        case Op::Tanh:  // 1 - y^2
            set(0, [&] { return b.op(Op::Mul, {g, b.op(Op::Sub, {b.constant(1.0), b.op(Op::Mul, {y, y})})}); });
            break;
        case Op::Exp: set(0, [&] { return b.op(Op::Mul, {g, y}); }); break;
        case Op::Log: set(0, [&] { return b.op(Op::Div, {g, in[0]}); }); break;
        case Op::Sqrt:  // 1 / (2 y)
            set(0, [&] { return b.op(Op::Div, {g, b.op(Op::Mul, {y, b.constant(2.0)})}); });
            break;
        case Op::Rsqrt:  // -y^3 / 2
            set(0, [&] {
                return b.op(Op::Mul, {g, b.op(Op::Mul, {b.op(Op::Mul, {y, b.op(Op::Mul, {y, y})}), b.constant(-0.5)})});
            });
            break;
        case Op::Expand: set(0, [&] { return b.unbroadcast(g, b.shape(in[0])); }); break;
        case Op::Linear: {
            // Leading dimensions flatten into rows: x [M, I], g [M, O], w [O, I].
            const ir::Shape& x_shape = b.shape(in[0]);
            const ir::Shape& w_shape = b.shape(in[1]);
            const std::int64_t rows = std::accumulate(x_shape.begin(), x_shape.end() - 1, std::int64_t{1}, std::multiplies<>());
            const int g2 = b.reshape(g, {rows, w_shape[0]});
            set(0, [&] { return b.reshape(b.op(Op::Linear, {g2, b.permute(in[1], {1, 0})}), x_shape); });  // g w
            set(1, [&] {  // g^T x, as linear(g^T, x^T)
                const int x2 = b.reshape(in[0], {rows, w_shape[1]});
                return b.op(Op::Linear, {b.permute(g2, {1, 0}), b.permute(x2, {1, 0})});
            });
            if (in.size() == 3) set(2, [&] { return b.sum(g2, {0}, false); });
            break;
        }
        case Op::Softmax: {  // y (g - sum(g y))
            const std::int64_t axis = node.attrs.get_int("axis");
            set(0, [&] {
                const int dot = b.sum(b.op(Op::Mul, {g, y}), {axis}, true);
                return b.op(Op::Mul, {y, b.op(Op::Sub, {g, dot})});
            });
            break;
        }
        case Op::LogSoftmax: {  // g - exp(y) sum(g)
            const std::int64_t axis = node.attrs.get_int("axis");
            set(0, [&] { return b.op(Op::Sub, {g, b.op(Op::Mul, {b.op(Op::Exp, {y}), b.sum(g, {axis}, true)})}); });
            break;
        }
        case Op::Conv2d: {
            const ir::Shape x_shape = b.shape(in[0]), w_shape = b.shape(in[1]);
            set(0, [&] {
                ir::Attributes attrs = node.attrs;
                attrs.set("input_shape", std::vector<std::int64_t>(x_shape.begin(), x_shape.end()));
                return b.op(Op::Conv2dBackwardData, {g, in[1]}, attrs);
            });
            set(1, [&] {
                ir::Attributes attrs = node.attrs;
                attrs.set("weight_shape", std::vector<std::int64_t>(w_shape.begin(), w_shape.end()));
                return b.op(Op::Conv2dBackwardWeight, {g, in[0]}, attrs);
            });
            if (in.size() == 3) set(2, [&] { return b.sum(g, {0, 2, 3}, false); });
            break;
        }
        case Op::MaxPool2d: set(0, [&] { return b.op(Op::MaxPool2dBackward, {g, in[0]}, node.attrs); }); break;
        case Op::AvgPool2d:
        case Op::AdaptiveAvgPool2d: {
            const ir::Shape x_shape = b.shape(in[0]);
            set(0, [&] {
                ir::Attributes attrs = node.attrs;
                attrs.set("input_shape", std::vector<std::int64_t>(x_shape.begin(), x_shape.end()));
                return b.op(node.op == Op::AvgPool2d ? Op::AvgPool2dBackward : Op::AdaptiveAvgPool2dBackward, {g}, attrs);
            });
            break;
        }
        case Op::Concat: {  // each part's slice of the gradient
            const std::int64_t axis = node.attrs.get_int("axis");
            std::int64_t start = 0;
            for (std::size_t i = 0; i < in.size(); ++i) {
                const std::int64_t extent = b.shape(in[i])[axis];
                set(i, [&] {
                    ir::Attributes attrs;
                    attrs.set("axis", axis);
                    attrs.set("start", start);
                    attrs.set("end", start + extent);
                    attrs.set("step", std::int64_t{1});
                    return b.op(Op::Slice, {g}, attrs);
                });
                start += extent;
            }
            break;
        }
        case Op::Reshape: set(0, [&] { return b.reshape(g, b.shape(in[0])); }); break;
        case Op::Permute: {
            const auto dims = node.attrs.get_ints("dims");
            std::vector<std::int64_t> inverse(dims.size());
            for (std::size_t d = 0; d < dims.size(); ++d) inverse[dims[d]] = static_cast<std::int64_t>(d);
            set(0, [&] { return b.permute(g, inverse); });
            break;
        }
        case Op::Sum:
        case Op::Mean: {
            // Back to the input's rank with the reduced axes kept as 1, then
            // broadcast over them (divided by their size for a mean).
            const ir::Shape& x_shape = b.shape(in[0]);
            ir::Shape kept = x_shape;
            std::int64_t count = 1;
            for (std::int64_t axis : reduced_axes(node, x_shape.size())) {
                count *= x_shape[axis];
                kept[axis] = 1;
            }
            set(0, [&] {
                int spread = b.expand(b.reshape(g, kept), x_shape);
                if (node.op == Op::Mean) spread = b.op(Op::Mul, {spread, b.constant(1.0 / static_cast<double>(count))});
                return spread;
            });
            break;
        }
        case Op::Custom: {  // the user's backward: every operand's gradient in one flat result
            const auto& attributes = node.attrs.all();
            if (std::none_of(attributes.begin(), attributes.end(), [](const auto& entry) {
                    const auto* name = std::get_if<std::string>(&entry.second);
                    return entry.first.ends_with(".backward") && name != nullptr && !name->empty();
                }))
                throw Error("custom layer '" + node.attrs.get_string("name") + "'" +
                            (node.origin.empty() ? "" : " at " + node.origin) +
                            " has no backward function: name one in CustomLayer({device: [library, forward, "
                            "backward]}) to train through it");
            std::vector<int> operands{g};
            operands.insert(operands.end(), in.begin(), in.end());
            int flat = -1;
            std::int64_t offset = 0;
            for (std::size_t i = 0; i < in.size(); ++i) {
                const std::int64_t count = ir::element_count(b.shape(in[i]));
                set(i, [&] {
                    if (flat < 0) flat = b.op(Op::CustomBackward, operands, node.attrs);
                    ir::Attributes part;
                    part.set("axis", std::int64_t{0});
                    part.set("start", offset);
                    part.set("end", offset + count);
                    part.set("step", std::int64_t{1});
                    return b.reshape(b.op(Op::Slice, {flat}, part), b.shape(in[i]));
                });
                offset += count;
            }
            break;
        }
        default:
            throw Error("SOL cannot train through '" + std::string(ir::name(node.op)) + "'" +
                        (node.origin.empty() ? "" : " at " + node.origin) + " yet: it has no gradient rule");
    }
    return result;
}

}  // namespace sol::passes
