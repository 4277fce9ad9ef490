// fold_expand, eliminate_common_subexpressions and form_multiply_add on the
// shapes autodiff leaves in BatchNorm's backward graph: expand(g) * c read by
// a full-size elementwise op, g*x + g*x, and g*s plus a term computed from x.
#include <gtest/gtest.h>

#include "sol/passes/eliminate_common_subexpressions.h"
#include "sol/passes/eliminate_dead_code.h"
#include "sol/passes/fold_expand.h"
#include "sol/passes/form_multiply_add.h"
#include "sol/passes/fuse_elementwise.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
using sol::passes::eliminate_common_subexpressions;
using sol::passes::fold_expand;

// The mean's backward: s [1,8,1,1] spread over x [2,8,6,6], scaled, times x.
TEST(FoldExpand, ScaledExpandReadByAFullSizeOpIsNeverMaterialized) {
    ir::Graph g;
    const int s = g.add_input("s", {1, 8, 1, 1}, DType::Float32), x = g.add_input("x", {2, 8, 6, 6}, DType::Float32);
    const int spread = g.add_node(Op::Expand, {s}, attrs({{"shape", Ints{2, 8, 6, 6}}}), "mean backward");
    const int scaled = g.add_node(Op::Mul, {spread, g.add_constant(0.25, DType::Float32)}, {}, "");
    const int product = g.add_node(Op::Mul, {scaled, x}, {}, "");
    g.set_outputs({product});
    EXPECT_EQ(fold_expand(g), 1);
    sol::passes::eliminate_dead_code(g);
    expect_valid(g, "after fold_expand");
    EXPECT_EQ(count_op(g, Op::Expand), 0) << ir::to_text(g);
    const ir::Node& out = node_producing(g, g.outputs()[0]);
    EXPECT_EQ(g.tensor(out.output).shape, (ir::Shape{2, 8, 6, 6}));
    const ir::Node& small = node_producing(g, out.inputs[0]);  // the scaling now runs on s
    EXPECT_EQ(small.op, Op::Mul);
    EXPECT_EQ(g.tensor(small.output).shape, (ir::Shape{1, 8, 1, 1}));
}

// An expand whose result must have the full shape stays: a graph output, a
// reader that would broadcast to less, a non-elementwise reader.
TEST(FoldExpand, ExpandThatMakesTheShapeStays) {
    ir::Graph g;
    const int s = g.add_input("s", {1, 8, 1, 1}, DType::Float32), r = g.add_input("r", {1, 8, 6, 1}, DType::Float32);
    const int spread = g.add_node(Op::Expand, {s}, attrs({{"shape", Ints{2, 8, 6, 6}}}), "");
    const int partial = g.add_node(Op::Add, {spread, r}, {}, "");  // r alone would not give [2,8,6,6]
    const int summed = g.add_node(Op::Sum, {spread}, attrs({{"axes", Ints{0}}}), "");
    g.set_outputs({spread, partial, summed});
    EXPECT_EQ(fold_expand(g), 0);
    EXPECT_EQ(count_op(g, Op::Expand), 1);
    EXPECT_EQ(node_producing(g, partial).inputs[0], spread);
}

TEST(EliminateCommonSubexpressions, RepeatedProductIsComputedOnce) {
    ir::Graph g;
    const int a = g.add_input("a", {4}, DType::Float32), b = g.add_input("b", {4}, DType::Float32);
    const int first = g.add_node(Op::Mul, {a, b}, {}, "g*x");
    const int second = g.add_node(Op::Mul, {a, b}, {}, "g*x again");
    const int clamped1 = g.add_node(Op::Clamp, {first}, attrs({{"min", 0.0}, {"max", 1.0}}), "");
    const int clamped2 = g.add_node(Op::Clamp, {second}, attrs({{"min", 0.0}, {"max", 2.0}}), "");  // other bounds
    g.set_outputs({g.add_node(Op::Add, {first, second}, {}, ""), clamped1, clamped2});
    EXPECT_EQ(eliminate_common_subexpressions(g), 1);
    expect_valid(g, "after eliminate_common_subexpressions");
    EXPECT_EQ(count_op(g, Op::Mul), 1);
    EXPECT_EQ(count_op(g, Op::Clamp), 2) << "different attributes are different values";
    const ir::Node& sum = node_producing(g, g.outputs()[0]);
    EXPECT_EQ(sum.inputs[0], sum.inputs[1]);
}

TEST(EliminateCommonSubexpressions, CustomLayersAreNeverMerged) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    auto custom = [&] {
        return g.add_node(Op::Custom, {x},
                          attrs({{"input_count", std::int64_t{1}}, {"shape", Ints{4}}, {"name", std::string("user")}}), "");
    };
    g.set_outputs({custom(), custom()});
    EXPECT_EQ(eliminate_common_subexpressions(g), 0);
    EXPECT_EQ(count_op(g, Op::Custom), 2);
}

// dx = g * s + (x - m) * k: the product joins the chain computed from x, so
// the whole input gradient is one kernel.
TEST(FormMultiplyAdd, ProductAddedToAnElementwiseChainJoinsIt) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 8, 6, 6}, DType::Float32), dy = g.add_input("g", {2, 8, 6, 6}, DType::Float32);
    const int m = g.add_input("m", {1, 8, 1, 1}, DType::Float32), s = g.add_input("s", {1, 8, 1, 1}, DType::Float32);
    const int term = g.add_node(Op::Mul, {g.add_node(Op::Sub, {x, m}, {}, ""), g.add_constant(0.5, DType::Float32)}, {}, "");
    const int direct = g.add_node(Op::Mul, {dy, s}, {}, "");
    g.set_outputs({g.add_node(Op::Add, {direct, term}, {}, "gradient sum")});
    EXPECT_EQ(sol::passes::form_multiply_add(g), 1);
    expect_valid(g, "after form_multiply_add");
    const ir::Node& out = node_producing(g, g.outputs()[0]);
    EXPECT_EQ(out.op, Op::MulAdd);
    EXPECT_EQ(out.inputs, (std::vector<int>{dy, s, term}));
    EXPECT_EQ(count_op(g, Op::Add), 0);
    sol::passes::fuse_elementwise(g);
    for (const ir::Node& node : g.nodes()) EXPECT_EQ(node.cluster, g.nodes().front().cluster) << "one kernel";
}

// Left alone: a product read twice, a broadcast product, an addend computed
// from a convolution's result (oneDNN's epilogue cannot add a product of two
// other tensors: the convolution would leave the library), and a product of
// a convolution's result (mul_add has no oneDNN post-op either).
TEST(FormMultiplyAdd, ProductsThatCannotJoinStay) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 4, 6, 6}, DType::Float32), a = g.add_input("a", {2, 4, 6, 6}, DType::Float32);
    const int row = g.add_input("row", {1, 4, 1, 1}, DType::Float32);
    const int relu = g.add_node(Op::Relu, {x}, {}, "");
    const int twice = g.add_node(Op::Mul, {a, a}, {}, "");
    const int first = g.add_node(Op::Add, {twice, relu}, {}, "");
    const int small = g.add_node(Op::Mul, {row, row}, {}, "");
    const int second = g.add_node(Op::Add, {small, g.add_node(Op::Neg, {x}, {}, "")}, {}, "");
    const int conv = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {4, 4, 1, 1}, DType::Float32)}, {}, "");
    const int third = g.add_node(Op::Add, {g.add_node(Op::Mul, {a, x}, {}, ""), g.add_node(Op::Relu, {conv}, {}, "")}, {}, "");
    const int conv2 = g.add_node(Op::Conv2d, {x, g.add_parameter("w2", {4, 4, 1, 1}, DType::Float32)}, {}, "");
    const int fourth = g.add_node(Op::Add, {g.add_node(Op::Mul, {conv2, a}, {}, ""), g.add_node(Op::Neg, {a}, {}, "")}, {}, "");
    g.set_outputs({first, second, third, twice, fourth});
    EXPECT_EQ(sol::passes::form_multiply_add(g), 0) << ir::to_text(g);
    EXPECT_EQ(count_op(g, Op::MulAdd), 0);
}

}  // namespace
