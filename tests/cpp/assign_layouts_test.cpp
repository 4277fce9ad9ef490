// assign_layouts on small hand-built graphs with fake device callbacks: which
// cluster results get channel-blocked (and which never may), how a refusing
// reader or writer keeps a tensor row-major, how `check` undoes blocking
// until every kernel is content, and that ir::verify guards the graph's edges.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "sol/error.h"
#include "sol/passes/assign_layouts.h"
#include "sol/passes/fuse_elementwise.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
using sol::passes::assign_layouts;

using Cluster = std::vector<int>;

// The device callbacks, faked: everyone accepts / every kernel is content.
bool accept_all(const ir::Graph&, const Cluster&, int) { return true; }
bool content(const ir::Graph&, const Cluster&) { return true; }

Op anchor_op(const ir::Graph& g, const Cluster& cluster) { return g.nodes()[cluster.front()].op; }

int block_of(const ir::Graph& g, int tensor) { return g.tensor(tensor).channel_block; }

int count_blocked(const ir::Graph& g) {
    int n = 0;
    for (std::size_t id = 0; id < g.tensor_count(); ++id) n += block_of(g, static_cast<int>(id)) != 0;
    return n;
}

// x -> conv(3x3, pad 1, bias) -> relu -> maxpool 3x3 s2 p1 -> conv(3x3, pad 1) -> out,
// 32 channels throughout: three kernels, two stored intermediates.
struct ConvPoolConv {
    ir::Graph g;
    int x, w1, b1, conv1, relu, pool, w2, out;
    ConvPoolConv() {
        x = g.add_input("x", {1, 32, 8, 8}, DType::Float32);
        w1 = g.add_parameter("w1", {32, 32, 3, 3}, DType::Float32);
        b1 = g.add_parameter("b1", {32}, DType::Float32);
        conv1 = g.add_node(Op::Conv2d, {x, w1, b1}, attrs({{"padding", Ints{1, 1}}}), "conv1");
        relu = g.add_node(Op::Relu, {conv1}, {}, "relu");
        pool = g.add_node(Op::MaxPool2d, {relu},
                          attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}}), "pool");
        w2 = g.add_parameter("w2", {32, 32, 3, 3}, DType::Float32);
        out = g.add_node(Op::Conv2d, {pool, w2}, attrs({{"padding", Ints{1, 1}}}), "conv2");
        g.set_outputs({out});
        sol::passes::fuse_elementwise(g);
    }
};

// The main case: both stored intermediates are blocked; the graph input, the
// output, the parameters and the conv's in-kernel value (never stored) stay
// in the framework's layout, and the result verifies and prints the layout.
TEST(AssignLayouts, BlocksTheIntermediatesOfAConvPoolConvChain) {
    ConvPoolConv m;
    EXPECT_EQ(assign_layouts(m.g, {16}, accept_all, content), 2);
    EXPECT_EQ(block_of(m.g, m.relu), 16);
    EXPECT_EQ(block_of(m.g, m.pool), 16);
    for (int edge : {m.x, m.w1, m.b1, m.w2, m.out}) EXPECT_EQ(block_of(m.g, edge), 0) << "%" << edge;
    EXPECT_EQ(block_of(m.g, m.conv1), 0) << "inside the conv's kernel, not a cluster result";
    EXPECT_EQ(count_blocked(m.g), 2);
    expect_valid(m.g, "after assign_layouts");
    EXPECT_NE(ir::to_text(m.g).find("f32[1,32,4,4] NCHW16c"), std::string::npos) << ir::to_text(m.g);
}

// Block 0 (no vector layout on the device, SOL_LAYOUT=plain) blocks nothing,
// even when everyone would accept.
TEST(AssignLayouts, BlockZeroKeepsEverythingRowMajor) {
    ConvPoolConv m;
    EXPECT_EQ(assign_layouts(m.g, {}, accept_all, content), 0);
    EXPECT_EQ(count_blocked(m.g), 0);
}

// The pass reads Node::cluster: on an unfused graph it must say so, not
// guess kernels.
TEST(AssignLayouts, RefusesAGraphThatWasNotFused) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 32, 8, 8}, DType::Float32);
    const int p = g.add_node(Op::MaxPool2d, {x}, attrs({{"kernel", Ints{2, 2}}}), "");
    g.set_outputs({g.add_node(Op::AvgPool2d, {p}, attrs({{"kernel", Ints{2, 2}}}), "")});
    EXPECT_THROW(assign_layouts(g, {16}, accept_all, content), sol::Error);
}

// x -> maxpool 2x2 -> avgpool(kernel k) -> out: one stored intermediate whose
// blocking depends only on its shape.
struct PoolPool {
    ir::Graph g;
    int pooled;
    PoolPool(std::int64_t channels, std::int64_t size, std::int64_t k) {
        const int x = g.add_input("x", {1, channels, size, size}, DType::Float32);
        pooled = g.add_node(Op::MaxPool2d, {x}, attrs({{"kernel", Ints{2, 2}}}), "");
        g.set_outputs({g.add_node(Op::AvgPool2d, {pooled}, attrs({{"kernel", Ints{k, k}}}), "")});
        sol::passes::fuse_elementwise(g);
    }
};

// Channels that do not fill whole blocks cannot be blocked at all.
TEST(AssignLayouts, ChannelsNotAMultipleOfTheBlockStayRowMajor) {
    PoolPool blocked(32, 8, 2), odd(24, 8, 2);
    EXPECT_EQ(assign_layouts(blocked.g, {16}, accept_all, content), 1);
    EXPECT_EQ(block_of(blocked.g, blocked.pooled), 16);
    EXPECT_EQ(assign_layouts(odd.g, {16}, accept_all, content), 0);
    EXPECT_EQ(block_of(odd.g, odd.pooled), 0);
    // 24 channels are whole blocks of 8, though.
    EXPECT_EQ(assign_layouts(odd.g, {8}, accept_all, content), 1);
    EXPECT_EQ(block_of(odd.g, odd.pooled), 8);
}

// Channels last fits any channel count: one block of all of them (NHWC).
TEST(AssignLayouts, ChannelsLastIsOneBlockOfAnyChannelCount) {
    for (const std::int64_t channels : {24, 58, 64}) {
        PoolPool pools(channels, 8, 2);
        EXPECT_EQ(assign_layouts(pools.g, {sol::passes::kChannelsLast}, accept_all, content), 1);
        EXPECT_EQ(block_of(pools.g, pools.pooled), channels);
    }
}

// A [N, C, 1, 1] value has the same bytes in both layouts: not worth a
// layout change for its readers.
TEST(AssignLayouts, OnePixelImagesStayRowMajor) {
    PoolPool m(32, 2, 1);  // maxpool 2x2 of 2x2 -> [1, 32, 1, 1]
    EXPECT_EQ(assign_layouts(m.g, {16}, accept_all, content), 0);
    EXPECT_EQ(block_of(m.g, m.pooled), 0);
}

// Values computed from parameters alone feed library weight reorders, which
// expect the framework's layout; per-call values next to them still block.
TEST(AssignLayouts, ParameterDerivedValuesStayRowMajor) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 32, 8, 8}, DType::Float32);
    const int p = g.add_parameter("p", {1, 32, 4, 4}, DType::Float32);
    const int derived = g.add_node(Op::MaxPool2d, {p}, attrs({{"kernel", Ints{1, 1}}}), "derived");
    const int pooled = g.add_node(Op::MaxPool2d, {x}, attrs({{"kernel", Ints{2, 2}}}), "per call");
    const int sum = g.add_node(Op::Add, {pooled, derived}, {}, "");
    g.set_outputs({g.add_node(Op::AvgPool2d, {sum}, attrs({{"kernel", Ints{2, 2}}}), "")});
    sol::passes::fuse_elementwise(g);
    ASSERT_TRUE(g.parameter_derived()[derived]);
    EXPECT_EQ(assign_layouts(g, {16}, accept_all, content), 1) << ir::to_text(g);
    EXPECT_EQ(block_of(g, derived), 0);
    EXPECT_EQ(block_of(g, p), 0);
    EXPECT_EQ(block_of(g, sum), 16) << "the add runs in the pooling kernel; its result is stored";
    expect_valid(g, "after assign_layouts");
}

// x -> maxpool -> a; a read by an avgpool kernel and by a conv kernel.
struct TwoReaders {
    ir::Graph g;
    int a;
    TwoReaders() {
        const int x = g.add_input("x", {1, 32, 8, 8}, DType::Float32);
        a = g.add_node(Op::MaxPool2d, {x}, attrs({{"kernel", Ints{2, 2}}}), "");
        const int avg = g.add_node(Op::AvgPool2d, {a}, attrs({{"kernel", Ints{2, 2}}}), "");
        const int conv = g.add_node(Op::Conv2d, {a, g.add_parameter("w", {32, 32, 1, 1}, DType::Float32)}, {}, "");
        g.set_outputs({avg, conv});
        sol::passes::fuse_elementwise(g);
    }
};

// The writer and every reader are asked, each with its own cluster (anchor
// first) and the tensor in question.
TEST(AssignLayouts, AsksTheWriterAndEveryReader) {
    TwoReaders m;
    std::multiset<Op> asked;
    auto record = [&](const ir::Graph& g, const Cluster& cluster, int tensor) {
        if (tensor == m.a) asked.insert(anchor_op(g, cluster));
        return true;
    };
    EXPECT_EQ(assign_layouts(m.g, {16}, record, content), 1);
    EXPECT_EQ(asked, (std::multiset<Op>{Op::MaxPool2d, Op::AvgPool2d, Op::Conv2d}));
}

// One reader that cannot take blocks keeps the tensor row-major (no
// conversion nodes are ever inserted); so does a refusing writer.
TEST(AssignLayouts, ARefusingReaderOrWriterKeepsTheTensorRowMajor) {
    TwoReaders reader, writer;
    auto no_conv = [](const ir::Graph& g, const Cluster& c, int) { return anchor_op(g, c) != Op::Conv2d; };
    EXPECT_EQ(assign_layouts(reader.g, {16}, no_conv, content), 0);
    EXPECT_EQ(block_of(reader.g, reader.a), 0);
    auto no_max = [](const ir::Graph& g, const Cluster& c, int) { return anchor_op(g, c) != Op::MaxPool2d; };
    EXPECT_EQ(assign_layouts(writer.g, {16}, no_max, content), 0);
    EXPECT_EQ(block_of(writer.g, writer.a), 0);
}

// A kernel that `check` rejects gets all its tensors back in row-major; the
// other kernel's blocked tensor stays, and the count says so.
TEST(AssignLayouts, ARejectedKernelUnblocksItsTensors) {
    ConvPoolConv second, pool;
    auto reject_conv2 = [&](const ir::Graph& g, const Cluster& c) { return g.nodes()[c.front()].output != second.out; };
    EXPECT_EQ(assign_layouts(second.g, {16}, accept_all, reject_conv2), 1);
    EXPECT_EQ(block_of(second.g, second.relu), 16);
    EXPECT_EQ(block_of(second.g, second.pool), 0) << "read by the rejected conv";
    expect_valid(second.g, "after assign_layouts");

    // The pooling kernel reads one blocked tensor and writes the other.
    auto reject_pool = [](const ir::Graph& g, const Cluster& c) { return anchor_op(g, c) != Op::MaxPool2d; };
    EXPECT_EQ(assign_layouts(pool.g, {16}, accept_all, reject_pool), 0);
    EXPECT_EQ(count_blocked(pool.g), 0);
}

// `check` is asked again after every change: un-blocking one kernel's tensors
// can leave its neighbour with a mix it rejects, and so on down the chain.
TEST(AssignLayouts, RejectionsCascadeUntilEveryKernelIsContent) {
    ConvPoolConv m;
    auto check = [&](const ir::Graph& g, const Cluster& c) {
        const ir::Node& anchor = g.nodes()[c.front()];
        if (anchor.output == m.out) return block_of(g, anchor.inputs[0]) == 0;  // conv2: row-major input only
        if (anchor.op == Op::MaxPool2d)  // no mixed layouts in the pooling kernel
            return block_of(g, anchor.inputs[0]) == block_of(g, anchor.output);
        return true;
    };
    EXPECT_EQ(assign_layouts(m.g, {16}, accept_all, check), 0);
    EXPECT_EQ(count_blocked(m.g), 0);
}

// Graph outputs belong to the framework: the pass never blocks one, and the
// verifier rejects a graph where something else did.
TEST(AssignLayouts, VerifyRejectsABlockedGraphOutput) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 32, 8, 8}, DType::Float32);
    const int pooled = g.add_node(Op::MaxPool2d, {x}, attrs({{"kernel", Ints{2, 2}}}), "");
    const int out = g.add_node(Op::AvgPool2d, {pooled}, attrs({{"kernel", Ints{2, 2}}}), "");
    g.set_outputs({pooled, out});  // pooled is an output and an intermediate
    sol::passes::fuse_elementwise(g);
    EXPECT_EQ(assign_layouts(g, {16}, accept_all, content), 0);
    EXPECT_EQ(block_of(g, pooled), 0);
    EXPECT_NO_THROW(ir::verify(g, "after assign_layouts"));
    g.set_channel_block(pooled, 16);
    EXPECT_THROW(ir::verify(g, "with a blocked output"), sol::Error);
}

// set_channel_block itself refuses layouts a tensor cannot have.
TEST(AssignLayouts, SetChannelBlockRejectsImpossibleLayouts) {
    PoolPool m(24, 8, 2);
    EXPECT_THROW(m.g.set_channel_block(m.pooled, 16), sol::Error) << "24 channels";
    EXPECT_THROW(m.g.set_channel_block(m.g.inputs()[0], 8), sol::Error) << "a graph input";
    EXPECT_NO_THROW(m.g.set_channel_block(m.pooled, 8));
    EXPECT_EQ(block_of(m.g, m.pooled), 8);
}

}  // namespace
