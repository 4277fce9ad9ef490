// fuse_elementwise: an anchor (contraction, pooling, elementwise) takes the
// chain of elementwise nodes that alone consume its value into its kernel.
// The return value counts nodes fused into another node's kernel.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "sol/passes/fold_batchnorm.h"
#include "sol/passes/fuse_elementwise.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

int cluster_of(const ir::Graph& g, int tensor) { return node_producing(g, tensor).cluster; }

std::size_t cluster_count(const ir::Graph& g) {
    std::set<int> clusters;
    for (const ir::Node& node : g.nodes()) clusters.insert(node.cluster);
    return clusters.size();
}

void expect_every_node_clustered(const ir::Graph& g) {
    for (std::size_t i = 0; i < g.nodes().size(); ++i) EXPECT_GE(g.nodes()[i].cluster, 0) << "node " << i;
}

// "conv + bias + ReLU as one kernel": 2 nodes ride in the conv's kernel.
TEST(FuseElementwise, ConvBiasReluIsOneKernel) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {8, 3, 3, 3}, DType::Float32)}, {}, "conv");
    const int biased = g.add_node(Op::Add, {conv, g.add_parameter("b", {8, 1, 1}, DType::Float32)}, {}, "bias");
    const int out = g.add_node(Op::Relu, {biased}, {}, "relu");
    g.set_outputs({out});
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 2);
    EXPECT_EQ(cluster_count(g), 1u);
    EXPECT_EQ(cluster_of(g, biased), cluster_of(g, conv));
    EXPECT_EQ(cluster_of(g, out), cluster_of(g, conv));
    expect_valid(g, "after fuse_elementwise");
}

TEST(FuseElementwise, ConvWithBiasInputAndReluCountsOne) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d,
                                {x, g.add_parameter("w", {8, 3, 3, 3}, DType::Float32),
                                 g.add_parameter("b", {8}, DType::Float32)},
                                {}, "");
    const int out = g.add_node(Op::Relu, {conv}, {}, "");
    g.set_outputs({out});
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 1);
    EXPECT_EQ(cluster_of(g, out), cluster_of(g, conv));
}

TEST(FuseElementwise, ChainStopsAtAValueWithTwoReaders) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {4, 3, 3, 3}, DType::Float32)}, {}, "");
    const int act = g.add_node(Op::Relu, {conv}, {}, "");
    const int s = g.add_node(Op::Sigmoid, {act}, {}, "");  // two readers of act
    const int t = g.add_node(Op::Tanh, {act}, {}, "");
    const int sum = g.add_node(Op::Add, {s, t}, {}, "");
    g.set_outputs({sum});
    // relu joins the conv; sigmoid and tanh each start a kernel; the add reads
    // tanh's value (its only reader) and so joins tanh's kernel.
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 2);
    EXPECT_EQ(cluster_of(g, act), cluster_of(g, conv));
    EXPECT_NE(cluster_of(g, s), cluster_of(g, conv));
    EXPECT_NE(cluster_of(g, t), cluster_of(g, conv));
    EXPECT_NE(cluster_of(g, s), cluster_of(g, t));
    EXPECT_EQ(cluster_of(g, sum), cluster_of(g, s)) << "sigmoid's value has one reader: the add";
    EXPECT_EQ(cluster_count(g), 3u);
    expect_every_node_clustered(g);
}

TEST(FuseElementwise, ChainStopsAtAGraphOutputAndAtAShapeChange) {
    ir::Graph g;
    const int x = g.add_input("x", {4, 6}, DType::Float32);
    const int y = g.add_node(Op::Linear, {x, g.add_parameter("w", {6, 6}, DType::Float32)}, {}, "");
    const int r = g.add_node(Op::Relu, {y}, {}, "");            // graph output: kept in memory
    const int e = g.add_node(Op::Exp, {r}, {}, "");
    const int wide = g.add_node(Op::Mul, {e, g.add_input("z", {3, 4, 6}, DType::Float32)}, {}, "");
    g.set_outputs({r, wide});
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 1);  // relu into linear; the mul broadcasts past exp's shape
    EXPECT_EQ(cluster_of(g, r), cluster_of(g, y));
    EXPECT_NE(cluster_of(g, e), cluster_of(g, y));
    EXPECT_NE(cluster_of(g, wide), cluster_of(g, e)) << "the mul writes a larger shape than exp";
    EXPECT_EQ(cluster_count(g), 3u);
}

// ResNet: out = relu(conv2(x) + x). The add reads the conv's value (its
// only reader) and the block input: it runs in the conv's kernel.
TEST(FuseElementwise, ResidualAddFusesIntoTheConvProducingIt) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 8, 8}, DType::Float32);
    const int a = g.add_node(Op::Conv2d, {x, g.add_parameter("w1", {4, 4, 3, 3}, DType::Float32)},
                             attrs({{"padding", Ints{1, 1}}}), "");
    const int h = g.add_node(Op::Relu, {a}, {}, "");
    const int b = g.add_node(Op::Conv2d, {h, g.add_parameter("w2", {4, 4, 3, 3}, DType::Float32)},
                             attrs({{"padding", Ints{1, 1}}}), "");
    const int sum = g.add_node(Op::Add, {b, x}, {}, "residual");
    const int out = g.add_node(Op::Relu, {sum}, {}, "");
    g.set_outputs({out});
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 3);
    EXPECT_EQ(cluster_of(g, h), cluster_of(g, a));
    EXPECT_EQ(cluster_of(g, sum), cluster_of(g, b));
    EXPECT_EQ(cluster_of(g, out), cluster_of(g, b));
    EXPECT_NE(cluster_of(g, a), cluster_of(g, b));
    EXPECT_EQ(cluster_count(g), 2u);
}

// Two branches meeting in an add: the add goes with the first branch's conv,
// whose value has the add as its only reader.
TEST(FuseElementwise, AddOfTwoConvsGoesWithTheFirst) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 8, 8}, DType::Float32);
    const int a = g.add_node(Op::Conv2d, {x, g.add_parameter("w1", {4, 4, 1, 1}, DType::Float32)}, {}, "");
    const int b = g.add_node(Op::Conv2d, {x, g.add_parameter("w2", {4, 4, 1, 1}, DType::Float32)}, {}, "");
    const int sum = g.add_node(Op::Add, {a, b}, {}, "");
    g.set_outputs({sum});
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 1);
    EXPECT_EQ(cluster_of(g, sum), cluster_of(g, a));
    EXPECT_NE(cluster_of(g, b), cluster_of(g, a));
}

TEST(FuseElementwise, ParameterDerivedAndPerCallNodesNeverShareAKernel) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int p = g.add_parameter("p", {4}, DType::Float32);
    const int scaled = g.add_node(Op::Mul, {p, g.add_constant(2.0, DType::Float32)}, {}, "");  // derived
    const int root = g.add_node(Op::Sqrt, {scaled}, {}, "");                                   // derived
    const int mixed = g.add_node(Op::Add, {root, x}, {}, "");                                  // per call
    const int out = g.add_node(Op::Relu, {mixed}, {}, "");
    g.set_outputs({out});
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 2);
    EXPECT_EQ(cluster_of(g, root), cluster_of(g, scaled));
    EXPECT_NE(cluster_of(g, mixed), cluster_of(g, root));
    EXPECT_EQ(cluster_of(g, out), cluster_of(g, mixed));
}

TEST(FuseElementwise, FoldedBatchNormKeepsWeightsOutOfTheConvKernel) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {4, 3, 3, 3}, DType::Float32)}, {}, "");
    std::vector<int> bn_inputs{conv};
    for (const char* name : {"m", "v", "g", "b"}) bn_inputs.push_back(g.add_parameter(name, {4}, DType::Float32));
    const int bn = g.add_node(Op::BatchNorm, bn_inputs, attrs({{"eps", 1e-5}}), "");
    const int out = g.add_node(Op::Relu, {bn}, {}, "");
    g.set_outputs({out});
    sol::passes::fold_batchnorm(g);
    sol::passes::fuse_elementwise(g);
    expect_every_node_clustered(g);
    const auto derived = g.parameter_derived();
    std::map<int, std::set<bool>> kinds;  // cluster -> derived flags of its nodes
    for (const ir::Node& node : g.nodes()) kinds[node.cluster].insert(derived[node.output]);
    for (const auto& [cluster, flags] : kinds) EXPECT_EQ(flags.size(), 1u) << "kernel " << cluster << " mixes stages";
    EXPECT_EQ(cluster_of(g, out), cluster_of(g, conv)) << ir::to_text(g);
    for (const ir::Node& node : g.nodes())
        if (derived[node.output]) {
            EXPECT_NE(node.cluster, cluster_of(g, conv)) << ir::to_text(g);
        }
    expect_valid(g, "after fuse_elementwise");
}

TEST(FuseElementwise, NonAnchorOpsGetTheirOwnKernel) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 6}, DType::Float32);
    const int s = g.add_node(Op::Softmax, {x}, attrs({{"axis", std::int64_t{1}}}), "");
    const int e = g.add_node(Op::Exp, {s}, {}, "");  // softmax takes no epilogue
    const int r = g.add_node(Op::Reshape, {e}, attrs({{"shape", Ints{12}}}), "");
    const int n = g.add_node(Op::Neg, {r}, {}, "");
    g.set_outputs({n});
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 0);
    EXPECT_EQ(cluster_count(g), 4u);
    expect_every_node_clustered(g);
}

TEST(FuseElementwise, PoolingTakesAnEpilogueAndRerunningResetsClusters) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 2, 8, 8}, DType::Float32);
    const int p = g.add_node(Op::MaxPool2d, {x}, attrs({{"kernel", Ints{2, 2}}}), "");
    const int r = g.add_node(Op::Relu, {p}, {}, "");
    g.set_outputs({r});
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 1);
    EXPECT_EQ(sol::passes::fuse_elementwise(g), 1) << "a second run starts from scratch";
    EXPECT_EQ(cluster_of(g, r), cluster_of(g, p));
}

}  // namespace
