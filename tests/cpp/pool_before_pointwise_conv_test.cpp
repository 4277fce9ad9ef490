// pool_before_pointwise_conv: avg_pool(conv1x1(x)) becomes conv1x1(avg_pool(x))
// where that is the same function and saves work, and nowhere else. The
// numbers are checked against PyTorch in tests/python/test_ops_pool.py.
#include <gtest/gtest.h>

#include "sol/passes/pool_before_pointwise_conv.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

struct ConvPool {
    ir::Graph graph;
    int x = -1, weight = -1, conv = -1, pool = -1;
};

// x [2, in, 8, 8] -> conv (kernel k) -> pool_op{pool_attrs}; the pool's result is
// the graph's output.
ConvPool conv_then_pool(Op pool_op, ir::Attributes pool_attrs, ir::Attributes conv_attrs = {}, std::int64_t in = 16,
                        std::int64_t out = 8, std::int64_t k = 1) {
    ConvPool net;
    ir::Graph& g = net.graph;
    net.x = g.add_input("x", {2, in, 8, 8}, DType::Float32);
    net.weight = g.add_parameter("conv.weight", {out, in, k, k}, DType::Float32);
    const int bias = g.add_parameter("conv.bias", {out}, DType::Float32);
    net.conv = g.add_node(Op::Conv2d, {net.x, net.weight, bias}, std::move(conv_attrs), "conv");
    net.pool = g.add_node(pool_op, {net.conv}, std::move(pool_attrs), "pool");
    g.set_outputs({net.pool});
    return net;
}

ir::Attributes pool2x2() { return attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}, {"padding", Ints{0, 0}}}); }

void expect_pool_moved(const ir::Graph& g, const ConvPool& net, const ir::Shape& result_shape) {
    ASSERT_EQ(ops(g).size(), 2u) << op_names(g);
    const ir::Node& conv = node_producing(g, g.outputs()[0]);
    ASSERT_EQ(conv.op, Op::Conv2d) << op_names(g);
    EXPECT_EQ(conv.origin, "conv");
    EXPECT_EQ(conv.inputs[1], net.weight) << "the convolution keeps its parameters";
    EXPECT_EQ(conv.inputs.size(), 3u) << "and its bias";
    const ir::Node& pool = node_producing(g, conv.inputs[0]);
    EXPECT_EQ(pool.origin, "pool");
    EXPECT_EQ(pool.inputs, std::vector<int>{net.x}) << "the pool reads the convolution's input";
    EXPECT_EQ(g.tensor(g.outputs()[0]).shape, result_shape) << "the result keeps its shape";
    expect_valid(g, "after pool_before_pointwise_conv");
}

TEST(PoolBeforePointwiseConv, MovesATwoByTwoAveragePoolBeforeTheConvolution) {
    ConvPool net = conv_then_pool(Op::AvgPool2d, pool2x2());
    ir::Graph& g = net.graph;
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(g), 1);
    expect_pool_moved(g, net, {2, 8, 4, 4});
    EXPECT_EQ(ops(g), (std::vector<Op>{Op::AvgPool2d, Op::Conv2d}));
    EXPECT_EQ(g.tensor(node_producing(g, g.outputs()[0]).inputs[0]).shape, (ir::Shape{2, 16, 4, 4}))
        << "the pool averages the input's 16 channels";
}

// ceil_mode's partial windows divide by their own pixel count, and an adaptive
// pool's windows are plain means too: both still commute with the bias.
TEST(PoolBeforePointwiseConv, MovesCeilModeAndAdaptivePools) {
    ir::Attributes ceil = attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{3, 3}}, {"ceil_mode", std::int64_t{1}}});
    ConvPool partial = conv_then_pool(Op::AvgPool2d, ceil);
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(partial.graph), 1);
    expect_pool_moved(partial.graph, partial, {2, 8, 3, 3});

    ConvPool adaptive = conv_then_pool(Op::AdaptiveAvgPool2d, attrs({{"output_size", Ints{1, 1}}}));
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(adaptive.graph), 1);
    expect_pool_moved(adaptive.graph, adaptive, {2, 8, 1, 1});
}

TEST(PoolBeforePointwiseConv, KeepsPoolsThatWouldComputeSomethingElse) {
    struct Case {
        const char* why;
        Op pool_op;
        ir::Attributes pool_attrs;
        ir::Attributes conv_attrs;
        std::int64_t kernel = 1;
    };
    ir::Attributes padded = pool2x2();
    padded.set("padding", Ints{1, 1});
    ir::Attributes divisor = pool2x2();
    divisor.set("divisor_override", std::int64_t{3});
    const std::vector<Case> cases = {
        {"max pool", Op::MaxPool2d, pool2x2(), {}},
        {"padded pool: the padding zeros count, the bias would not", Op::AvgPool2d, padded, {}},
        {"divisor_override: the weights do not sum to one", Op::AvgPool2d, divisor, {}},
        {"3x3 convolution", Op::AvgPool2d, pool2x2(), attrs({{"padding", Ints{1, 1}}}), 3},
        {"strided convolution", Op::AvgPool2d, attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}}),
         attrs({{"stride", Ints{2, 2}}})},
        {"padded 1x1 convolution", Op::AvgPool2d, pool2x2(), attrs({{"padding", Ints{1, 1}}})},
    };
    for (const Case& c : cases) {
        ConvPool net = conv_then_pool(c.pool_op, c.pool_attrs, c.conv_attrs, 16, 8, c.kernel);
        const std::vector<Op> before = ops(net.graph);
        EXPECT_EQ(sol::passes::pool_before_pointwise_conv(net.graph), 0) << c.why;
        EXPECT_EQ(ops(net.graph), before) << c.why;
        EXPECT_EQ(node_producing(net.graph, net.pool).inputs, std::vector<int>{net.conv}) << c.why;
    }
}

TEST(PoolBeforePointwiseConv, KeepsAConvolutionWhoseResultIsAlsoReadElsewhere) {
    ConvPool read_twice = conv_then_pool(Op::AvgPool2d, pool2x2());
    const int relu = read_twice.graph.add_node(Op::Relu, {read_twice.conv}, {}, "relu");
    read_twice.graph.set_outputs({read_twice.pool, relu});
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(read_twice.graph), 0) << "the full-size result is needed";

    ConvPool output = conv_then_pool(Op::AvgPool2d, pool2x2());
    output.graph.set_outputs({output.pool, output.conv});
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(output.graph), 0) << "the full-size result is an output";
}

// 64 channels into 1 with an overlapping 3x3 stride-1 pool (8x8 -> 6x6): the
// convolution would save 64 * 28 multiply-adds, the pool would gain
// 9 * 36 * 63 additions. A pool that keeps the pixel count saves nothing.
TEST(PoolBeforePointwiseConv, KeepsPoolsWhereMovingThemCostsMore) {
    ir::Attributes overlapping = attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{1, 1}}});
    ConvPool wide_in = conv_then_pool(Op::AvgPool2d, overlapping, {}, 64, 1);
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(wide_in.graph), 0);

    ConvPool same_size = conv_then_pool(Op::AvgPool2d, attrs({{"kernel", Ints{1, 1}}, {"stride", Ints{1, 1}}}));
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(same_size.graph), 0);

    // The same overlapping pool with more output than input channels pays.
    ConvPool wide_out = conv_then_pool(Op::AvgPool2d, overlapping, {}, 8, 64);
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(wide_out.graph), 1);
    expect_pool_moved(wide_out.graph, wide_out, {2, 64, 6, 6});
}

// Two DenseNet-like transitions (ReLU -> conv1x1 halving the channels -> 2x2
// average pool) in a row: both pools move, the second one's input being the
// first moved convolution's result.
TEST(PoolBeforePointwiseConv, MovesEveryPairInAChain) {
    ir::Graph g;
    int v = g.add_input("x", {1, 32, 16, 16}, DType::Float32);
    for (int block = 0; block < 2; ++block) {
        const std::string prefix = "t" + std::to_string(block) + ".";
        const std::int64_t channels = g.tensor(v).shape[1];
        v = g.add_node(Op::Relu, {v}, {}, prefix + "relu");
        const int weight = g.add_parameter(prefix + "conv.weight", {channels / 2, channels, 1, 1}, DType::Float32);
        v = g.add_node(Op::Conv2d, {v, weight}, {}, prefix + "conv");
        v = g.add_node(Op::AvgPool2d, {v}, pool2x2(), prefix + "pool");
    }
    g.set_outputs({v});
    EXPECT_EQ(sol::passes::pool_before_pointwise_conv(g), 2);
    EXPECT_EQ(ops(g), (std::vector<Op>{Op::Relu, Op::AvgPool2d, Op::Conv2d, Op::Relu, Op::AvgPool2d, Op::Conv2d}))
        << op_names(g);
    EXPECT_EQ(g.tensor(g.outputs()[0]).shape, (ir::Shape{1, 8, 4, 4}));
    expect_valid(g, "after pool_before_pointwise_conv");
}

}  // namespace
