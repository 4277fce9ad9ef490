// lower_batchnorm: a BatchNorm that could not be folded becomes
// x * scale + shift with per-channel vectors computed from the parameters.
#include <gtest/gtest.h>

#include "sol/error.h"
#include "sol/passes/fold_batchnorm.h"
#include "sol/passes/lower_batchnorm.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

int add_batch_norm(ir::Graph& g, int x, std::int64_t channels, const std::string& prefix) {
    std::vector<int> inputs{x};
    for (const char* name : {"running_mean", "running_var", "weight", "bias"})
        inputs.push_back(g.add_parameter(prefix + name, {channels}, DType::Float32));
    return g.add_node(Op::BatchNorm, inputs, attrs({{"eps", 1e-3}}), prefix);
}

// The per-call part of a lowered BatchNorm: add(mul(x, reshape(scale)), reshape(shift)).
void expect_lowered(const ir::Graph& g, int result, int x, const ir::Shape& vector_shape) {
    const auto derived = g.parameter_derived();
    const ir::Node& add = node_producing(g, result);
    ASSERT_EQ(add.op, Op::Add) << ir::to_text(g);
    const ir::Node& mul = node_producing(g, add.inputs[0]);
    ASSERT_EQ(mul.op, Op::Mul) << ir::to_text(g);
    EXPECT_EQ(mul.inputs[0], x);
    for (int vector : {mul.inputs[1], add.inputs[1]}) {
        EXPECT_EQ(g.tensor(vector).shape, vector_shape);
        EXPECT_TRUE(derived[vector]) << "scale and shift depend on parameters only";
        EXPECT_EQ(node_producing(g, vector).op, Op::Reshape);
    }
    EXPECT_FALSE(derived[result]);
}

TEST(LowerBatchnorm, LoneBatchNormBecomesMulAdd) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 5, 4, 4}, DType::Float32);
    const int bn = add_batch_norm(g, x, 5, "bn.");
    g.set_outputs({bn});
    sol::passes::lower_batchnorm(g);

    EXPECT_EQ(count_op(g, Op::BatchNorm), 0) << ir::to_text(g);
    ASSERT_EQ(g.outputs().size(), 1u);
    expect_lowered(g, g.outputs()[0], x, {5, 1, 1});
    EXPECT_EQ(count_op(g, Op::Rsqrt), 1);
    EXPECT_EQ(g.parameters().size(), 4u) << "the framework's statistics stay parameters";
    for (const ir::Node& node : g.nodes()) EXPECT_EQ(node.origin, "bn.") << "origin kept for errors";
    expect_valid(g, "after lower_batchnorm");
}

TEST(LowerBatchnorm, RankTwoInputUsesPlainChannelVectors) {
    ir::Graph g;
    const int x = g.add_input("x", {8, 6}, DType::Float32);
    const int bn = add_batch_norm(g, x, 6, "bn1d.");
    const int out = g.add_node(Op::Relu, {bn}, {}, "");
    g.set_outputs({out});
    sol::passes::lower_batchnorm(g);
    const ir::Node& relu = node_producing(g, out);
    expect_lowered(g, relu.inputs[0], x, {6});
    expect_valid(g, "after lower_batchnorm");
}

// fold_batchnorm refuses (the raw conv result has a second reader); the
// BatchNorm is lowered instead and both readers see the right values.
TEST(LowerBatchnorm, LowersWhatFoldingLeftBehind) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 6, 6}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d, {x, g.add_parameter("conv.weight", {4, 3, 3, 3}, DType::Float32)}, {}, "");
    const int bn = add_batch_norm(g, conv, 4, "bn.");
    const int side = g.add_node(Op::Neg, {conv}, {}, "");
    const int sum = g.add_node(Op::Add, {bn, side}, {}, "");
    g.set_outputs({sum});
    sol::passes::fold_batchnorm(g);
    ASSERT_EQ(count_op(g, Op::BatchNorm), 1);
    sol::passes::lower_batchnorm(g);
    EXPECT_EQ(count_op(g, Op::BatchNorm), 0);
    const ir::Node& add = node_producing(g, sum);
    expect_lowered(g, add.inputs[0], conv, {4, 1, 1});
    EXPECT_EQ(node_producing(g, add.inputs[1]).op, Op::Neg);
    EXPECT_EQ(node_producing(g, conv).inputs.size(), 2u) << "the conv is untouched";
    expect_valid(g, "after lower_batchnorm");
}

// A batch_norm without eps: either refused where it is built (naming the op)
// or lowered with PyTorch's default 1e-5. Accepting it and failing later with
// "missing attribute 'eps'" names neither the op nor the origin.
TEST(LowerBatchnorm, MissingEpsIsRefusedEarlyOrDefaulted) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3}, DType::Float32);
    std::vector<int> inputs{x};
    for (const char* name : {"m", "v", "g", "b"}) inputs.push_back(g.add_parameter(name, {3}, DType::Float32));
    int bn = -1;
    try {
        bn = g.add_node(Op::BatchNorm, inputs, {}, "net.bn (model.py:5)");
    } catch (const sol::ShapeError& error) {
        EXPECT_NE(std::string(error.what()).find("batch_norm"), std::string::npos) << error.what();
        return;
    }
    g.set_outputs({bn});
    try {
        sol::passes::lower_batchnorm(g);
    } catch (const sol::Error& error) {
        FAIL() << "accepted by add_node, then lowering fails with: " << error.what();
    }
    bool default_eps = false;
    for (const ir::Node& node : g.nodes())
        for (int input : node.inputs)
            default_eps |= g.tensor(input).kind == ir::TensorKind::Constant && g.tensor(input).value == 1e-5;
    EXPECT_TRUE(default_eps) << ir::to_text(g);
}

TEST(LowerBatchnorm, NothingToDoLeavesTheGraph) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    g.set_outputs({g.add_node(Op::Relu, {x}, {}, "")});
    const std::string before = ir::to_text(g);
    sol::passes::lower_batchnorm(g);
    EXPECT_EQ(ir::to_text(g), before);
}

}  // namespace
