// canonicalize: relu6 and hardtanh become clamp, identity disappears,
// negative axes become positive.
#include <gtest/gtest.h>

#include <limits>

#include "sol/passes/canonicalize.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Canonicalize, Relu6AndHardtanhBecomeClamp) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 8}, DType::Float32);
    const int a = g.add_node(Op::Relu6, {x}, {}, "act1");
    const int b = g.add_node(Op::Hardtanh, {a}, attrs({{"min", -2.0}, {"max", 3.5}}), "act2");
    const int c = g.add_node(Op::Hardtanh, {b}, {}, "act3");
    const int d = g.add_node(Op::Clamp, {c}, attrs({{"max", 4.0}}), "act4");
    g.set_outputs({d});
    sol::passes::canonicalize(g);

    ASSERT_EQ(ops(g), (std::vector<Op>{Op::Clamp, Op::Clamp, Op::Clamp, Op::Clamp})) << op_names(g);
    const auto& n = g.nodes();
    EXPECT_EQ(n[0].attrs.get_float("min"), 0.0);
    EXPECT_EQ(n[0].attrs.get_float("max"), 6.0);
    EXPECT_EQ(n[1].attrs.get_float("min"), -2.0);
    EXPECT_EQ(n[1].attrs.get_float("max"), 3.5);
    EXPECT_EQ(n[2].attrs.get_float("min"), -1.0);  // hardtanh's defaults
    EXPECT_EQ(n[2].attrs.get_float("max"), 1.0);
    EXPECT_EQ(n[3].attrs.get_float("min"), -kInf);  // missing bound: unbounded
    EXPECT_EQ(n[3].attrs.get_float("max"), 4.0);
    EXPECT_EQ(n[1].origin, "act2");  // origins survive the rewrite
    EXPECT_EQ(g.outputs(), std::vector<int>{d});
    expect_valid(g, "after canonicalize");
}

TEST(Canonicalize, IdentityIsRemovedAndReadersRewired) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int i1 = g.add_node(Op::Identity, {x}, {}, "");
    const int i2 = g.add_node(Op::Identity, {i1}, {}, "");  // chain of identities
    const int r = g.add_node(Op::Relu, {i2}, {}, "");
    const int i3 = g.add_node(Op::Identity, {r}, {}, "");   // feeds the output
    const int e = g.add_node(Op::Exp, {i1}, {}, "");
    g.set_outputs({i3, e});
    sol::passes::canonicalize(g);

    EXPECT_EQ(count_op(g, Op::Identity), 0) << op_names(g);
    ASSERT_EQ(ops(g), (std::vector<Op>{Op::Relu, Op::Exp}));
    EXPECT_EQ(g.nodes()[0].inputs, std::vector<int>{x});
    EXPECT_EQ(g.nodes()[1].inputs, std::vector<int>{x});
    EXPECT_EQ(g.outputs(), (std::vector<int>{r, e}));
    expect_valid(g, "after canonicalize");
}

TEST(Canonicalize, IdentityOfAnInputAsTheOutput) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    g.set_outputs({g.add_node(Op::Identity, {x}, {}, "")});
    sol::passes::canonicalize(g);
    EXPECT_TRUE(g.nodes().empty());
    EXPECT_EQ(g.outputs(), std::vector<int>{x});
    expect_valid(g, "after canonicalize");
}

TEST(Canonicalize, NegativeAxesBecomePositive) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3, 4}, DType::Float32);
    const int s = g.add_node(Op::Softmax, {x}, attrs({{"axis", std::int64_t{-1}}}), "");
    const int l = g.add_node(Op::LogSoftmax, {s}, attrs({{"axis", std::int64_t{-3}}}), "");
    const int p = g.add_node(Op::Permute, {l}, attrs({{"dims", Ints{-1, 0, -2}}}), "");
    const int c = g.add_node(Op::Concat, {p, p}, attrs({{"axis", std::int64_t{-2}}}), "");
    const int k = g.add_node(Op::Softmax, {c}, attrs({{"axis", std::int64_t{1}}}), "");  // already positive
    g.set_outputs({k});
    sol::passes::canonicalize(g);

    ASSERT_EQ(g.nodes().size(), 5u);
    EXPECT_EQ(g.nodes()[0].attrs.get_int("axis"), 2);
    EXPECT_EQ(g.nodes()[1].attrs.get_int("axis"), 0);
    EXPECT_EQ(g.nodes()[2].attrs.get_ints("dims"), (Ints{2, 0, 1}));
    EXPECT_EQ(g.nodes()[3].attrs.get_int("axis"), 1);
    EXPECT_EQ(g.nodes()[4].attrs.get_int("axis"), 1);
    EXPECT_EQ(g.tensor(c).shape, (ir::Shape{4, 4, 3}));
    expect_valid(g, "after canonicalize");
}

TEST(Canonicalize, LeavesOtherOpsAndParametersAlone) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int w = g.add_parameter("w", {4, 3, 3, 3}, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, w}, {}, "");
    const int z = g.add_node(Op::Relu, {y}, {}, "");
    g.set_outputs({z});
    const std::string before = ir::to_text(g);
    sol::passes::canonicalize(g);
    EXPECT_EQ(ir::to_text(g), before);
    EXPECT_EQ(parameter_names(g), std::vector<std::string>{"w"});
}

}  // namespace
