// fold_identity: x*1, 1*x, x/1, x+0, 0+x, x-0 disappear, but only where the
// neutral operand does not change the result's shape or dtype.
#include <gtest/gtest.h>

#include "sol/passes/fold_identity.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

TEST(FoldIdentity, RemovesNeutralArithmetic) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3}, DType::Float32);
    const int one = g.add_constant(1.0, DType::Float32);
    const int zero = g.add_constant(0.0, DType::Float32);
    int v = g.add_node(Op::Relu, {x}, {}, "");
    const int start = v;
    v = g.add_node(Op::Mul, {v, one}, {}, "");
    v = g.add_node(Op::Mul, {one, v}, {}, "");
    v = g.add_node(Op::Div, {v, one}, {}, "");
    v = g.add_node(Op::Add, {v, zero}, {}, "");
    v = g.add_node(Op::Add, {zero, v}, {}, "");
    v = g.add_node(Op::Sub, {v, zero}, {}, "");
    const int out = g.add_node(Op::Exp, {v}, {}, "");
    g.set_outputs({out});
    sol::passes::fold_identity(g);

    ASSERT_EQ(ops(g), (std::vector<Op>{Op::Relu, Op::Exp})) << op_names(g);
    EXPECT_EQ(g.nodes()[1].inputs, std::vector<int>{start});
    expect_valid(g, "after fold_identity");
}

TEST(FoldIdentity, KeepsArithmeticThatDoesSomething) {
    ir::Graph g;
    const int x = g.add_input("x", {3}, DType::Float32);
    const int one = g.add_constant(1.0, DType::Float32);
    const int zero = g.add_constant(0.0, DType::Float32);
    const int two = g.add_constant(2.0, DType::Float32);
    const int a = g.add_node(Op::Sub, {zero, x}, {}, "");  // -x
    const int b = g.add_node(Op::Div, {one, a}, {}, "");   // 1/x
    const int c = g.add_node(Op::Mul, {b, two}, {}, "");
    const int d = g.add_node(Op::Add, {c, one}, {}, "");
    const int e = g.add_node(Op::Mul, {d, zero}, {}, "");
    g.set_outputs({e});
    sol::passes::fold_identity(g);
    EXPECT_EQ(ops(g), (std::vector<Op>{Op::Sub, Op::Div, Op::Mul, Op::Add, Op::Mul})) << op_names(g);
    expect_valid(g, "after fold_identity");
}

TEST(FoldIdentity, IntegerOneAndAnOutputThatBecomesTheInput) {
    ir::Graph g;
    const int x = g.add_input("x", {5}, DType::Int64);
    const int y = g.add_node(Op::Mul, {x, g.add_constant(1, DType::Int64)}, {}, "");
    g.set_outputs({y});
    sol::passes::fold_identity(g);
    EXPECT_TRUE(g.nodes().empty()) << op_names(g);
    EXPECT_EQ(g.outputs(), std::vector<int>{x});
    expect_valid(g, "after fold_identity");
}

TEST(FoldIdentity, ScalarTimesOneIsRemoved) {
    ir::Graph g;
    const int s = g.add_input("s", {}, DType::Float32);
    const int y = g.add_node(Op::Mul, {g.add_constant(1.0, DType::Float32), s}, {}, "");
    g.set_outputs({g.add_node(Op::Neg, {y}, {}, "")});
    sol::passes::fold_identity(g);
    ASSERT_EQ(ops(g), std::vector<Op>{Op::Neg});
    EXPECT_EQ(g.nodes()[0].inputs, std::vector<int>{s});
}

// Constants are rank 0, so a "1" that broadcasts x to a larger shape cannot be
// built with add_node; the node is edited by hand: mul(x:[3], ones:[2,3]) with
// the ones operand swapped for the constant 1 keeps its [2,3] result. Removing
// it would shrink the value its readers see.
TEST(FoldIdentity, KeepsAOneThatBroadcastsToALargerShape) {
    ir::Graph g;
    const int x = g.add_input("x", {3}, DType::Float32);
    const int ones = g.add_parameter("ones", {2, 3}, DType::Float32);
    const int y = g.add_node(Op::Mul, {x, ones}, {}, "");
    const int z = g.add_node(Op::Relu, {y}, {}, "");
    g.set_outputs({z});
    ASSERT_EQ(g.tensor(y).shape, (ir::Shape{2, 3}));
    const int one = g.add_constant(1.0, DType::Float32);
    g.nodes()[0].inputs = {x, one};
    sol::passes::fold_identity(g);
    ASSERT_EQ(ops(g), (std::vector<Op>{Op::Mul, Op::Relu})) << op_names(g);
    EXPECT_EQ(g.nodes()[1].inputs, std::vector<int>{y});

    // The same with a real ones tensor (not a constant) is never an identity.
    ir::Graph h;
    const int hx = h.add_input("x", {3}, DType::Float32);
    const int hy = h.add_node(Op::Mul, {hx, h.add_parameter("ones", {2, 3}, DType::Float32)}, {}, "");
    h.set_outputs({hy});
    sol::passes::fold_identity(h);
    EXPECT_EQ(ops(h), std::vector<Op>{Op::Mul});
    expect_valid(h, "after fold_identity");
}

}  // namespace
