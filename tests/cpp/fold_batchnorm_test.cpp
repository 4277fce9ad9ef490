// fold_batchnorm: conv -> batch_norm becomes one conv whose weight and bias
// are computed from the parameters by graph nodes (never baked in), so the
// framework's BatchNorm tensors stay graph parameters.
#include <gtest/gtest.h>

#include "sol/passes/fold_batchnorm.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

struct ConvBn {
    ir::Graph graph;
    int x = -1, conv = -1, bn = -1;
};

ConvBn conv_bn(bool conv_bias, const std::string& prefix = "") {
    ConvBn net;
    ir::Graph& g = net.graph;
    net.x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    std::vector<int> conv_inputs{net.x, g.add_parameter(prefix + "conv.weight", {4, 3, 3, 3}, DType::Float32)};
    if (conv_bias) conv_inputs.push_back(g.add_parameter(prefix + "conv.bias", {4}, DType::Float32));
    net.conv = g.add_node(Op::Conv2d, conv_inputs, attrs({{"padding", Ints{1, 1}}}), prefix + "conv");
    std::vector<int> bn_inputs{net.conv};
    for (const char* name : {"bn.running_mean", "bn.running_var", "bn.weight", "bn.bias"})
        bn_inputs.push_back(g.add_parameter(prefix + name, {4}, DType::Float32));
    net.bn = g.add_node(Op::BatchNorm, bn_inputs, attrs({{"eps", 1e-5}}), prefix + "bn");
    return net;
}

void expect_folded_conv(const ir::Graph& g, int conv_output) {
    const ir::Node& conv = node_producing(g, conv_output);
    ASSERT_EQ(conv.op, Op::Conv2d);
    ASSERT_EQ(conv.inputs.size(), 3u) << "the folded conv gets a bias (the BatchNorm shift)";
    const auto derived = g.parameter_derived();
    for (int k : {1, 2}) {
        const ir::Tensor& t = g.tensor(conv.inputs[k]);
        EXPECT_EQ(t.kind, ir::TensorKind::Intermediate) << "input " << k << " must be computed, not baked in";
        EXPECT_TRUE(derived[t.id]) << "input " << k << " must depend on parameters only";
    }
    EXPECT_EQ(g.tensor(conv.inputs[1]).shape, (ir::Shape{4, 3, 3, 3}));
    EXPECT_EQ(g.tensor(conv.inputs[2]).shape, (ir::Shape{4}));
    EXPECT_FALSE(derived[conv_output]);
}

TEST(FoldBatchnorm, FoldsIntoConvWithoutBias) {
    ConvBn net = conv_bn(false);
    ir::Graph& g = net.graph;
    const int out = g.add_node(Op::Relu, {net.bn}, {}, "act");
    g.set_outputs({out});
    sol::passes::fold_batchnorm(g);

    EXPECT_EQ(count_op(g, Op::BatchNorm), 0) << ir::to_text(g);
    EXPECT_EQ(count_op(g, Op::Conv2d), 1);
    expect_folded_conv(g, net.conv);
    EXPECT_EQ(node_producing(g, out).inputs, std::vector<int>{net.conv}) << "relu now reads the conv";
    // The framework owns the BatchNorm tensors: they stay parameters.
    for (const char* name : {"conv.weight", "bn.running_mean", "bn.running_var", "bn.weight", "bn.bias"})
        EXPECT_TRUE(has_parameter(g, name)) << name;
    EXPECT_EQ(g.parameters().size(), 5u);
    // The folding arithmetic reads eps as a constant.
    bool reads_eps = false;
    for (const ir::Node& node : g.nodes())
        for (int input : node.inputs)
            reads_eps |= g.tensor(input).kind == ir::TensorKind::Constant && g.tensor(input).value == 1e-5;
    EXPECT_TRUE(reads_eps) << ir::to_text(g);
    EXPECT_EQ(count_op(g, Op::Rsqrt), 1);
    expect_valid(g, "after fold_batchnorm");
}

TEST(FoldBatchnorm, FoldsTheConvBiasIntoTheShift) {
    ConvBn net = conv_bn(true);
    ir::Graph& g = net.graph;
    g.set_outputs({net.bn});
    sol::passes::fold_batchnorm(g);

    EXPECT_EQ(count_op(g, Op::BatchNorm), 0);
    expect_folded_conv(g, net.conv);
    EXPECT_EQ(g.outputs(), std::vector<int>{net.conv}) << "the graph returns the folded conv";
    EXPECT_TRUE(has_parameter(g, "conv.bias"));
    EXPECT_EQ(g.parameters().size(), 6u);
    // The old bias is read by the shift computation, not by the conv.
    const ir::Node& conv = node_producing(g, net.conv);
    const int old_bias = g.parameters()[1];
    ASSERT_EQ(g.tensor(old_bias).name, "conv.bias");
    EXPECT_NE(conv.inputs[2], old_bias);
    EXPECT_FALSE(g.consumers(old_bias).empty());
    expect_valid(g, "after fold_batchnorm");
}

TEST(FoldBatchnorm, NotFoldedWhenTheConvOutputHasASecondReader) {
    ConvBn net = conv_bn(false);
    ir::Graph& g = net.graph;
    const int side = g.add_node(Op::Sigmoid, {net.conv}, {}, "side");  // needs the raw conv result
    const int sum = g.add_node(Op::Add, {net.bn, side}, {}, "");
    g.set_outputs({sum});
    const std::string before = ir::to_text(g);
    sol::passes::fold_batchnorm(g);
    EXPECT_EQ(ir::to_text(g), before);
    EXPECT_EQ(count_op(g, Op::BatchNorm), 1);
    EXPECT_EQ(node_producing(g, net.conv).inputs.size(), 2u);
}

TEST(FoldBatchnorm, NotFoldedWhenTheConvOutputIsAGraphOutput) {
    ConvBn net = conv_bn(false);
    net.graph.set_outputs({net.bn, net.conv});
    sol::passes::fold_batchnorm(net.graph);
    EXPECT_EQ(count_op(net.graph, Op::BatchNorm), 1);
    EXPECT_EQ(node_producing(net.graph, net.conv).inputs.size(), 2u);
}

TEST(FoldBatchnorm, NotFoldedAfterANonConvolution) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 4}, DType::Float32);
    const int y = g.add_node(Op::Linear, {x, g.add_parameter("fc.weight", {4, 4}, DType::Float32)}, {}, "");
    std::vector<int> bn_inputs{y};
    for (const char* name : {"m", "v", "g", "b"}) bn_inputs.push_back(g.add_parameter(name, {4}, DType::Float32));
    g.set_outputs({g.add_node(Op::BatchNorm, bn_inputs, attrs({{"eps", 1e-3}}), "")});
    sol::passes::fold_batchnorm(g);
    EXPECT_EQ(ops(g), (std::vector<Op>{Op::Linear, Op::BatchNorm}));
}

TEST(FoldBatchnorm, FoldsTwoBlocksInOneGraph) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    int v = x;
    std::vector<int> convs;
    for (int block = 0; block < 2; ++block) {
        const std::string p = "layer" + std::to_string(block) + ".";
        const int w = g.add_parameter(p + "conv.weight", {3, 3, 3, 3}, DType::Float32);
        v = g.add_node(Op::Conv2d, {v, w}, attrs({{"padding", Ints{1, 1}}}), p + "conv");
        convs.push_back(v);
        std::vector<int> bn_inputs{v};
        for (const char* name : {"bn.running_mean", "bn.running_var", "bn.weight", "bn.bias"})
            bn_inputs.push_back(g.add_parameter(p + name, {3}, DType::Float32));
        v = g.add_node(Op::BatchNorm, bn_inputs, attrs({{"eps", 1e-5}}), p + "bn");
        v = g.add_node(Op::Relu, {v}, {}, p + "relu");
    }
    g.set_outputs({v});
    sol::passes::fold_batchnorm(g);
    EXPECT_EQ(count_op(g, Op::BatchNorm), 0) << ir::to_text(g);
    EXPECT_EQ(g.parameters().size(), 10u);
    for (int conv : convs) {
        SCOPED_TRACE("conv %" + std::to_string(conv));
        const ir::Node& node = node_producing(g, conv);
        EXPECT_EQ(node.inputs.size(), 3u);
        EXPECT_TRUE(g.parameter_derived()[node.inputs[1]]);
    }
    // The second conv reads the first block's relu, as before.
    const ir::Node& second = node_producing(g, convs[1]);
    EXPECT_EQ(node_producing(g, second.inputs[0]).op, Op::Relu);
    expect_valid(g, "after fold_batchnorm");
}

}  // namespace
