// fuse_depth_first on hand-built graphs (after fuse_elementwise, layouts set
// by hand): which kernels move into their reader's kernel (a channel concat
// into an elementwise chain, a concat and/or chain into a pooling window) and
// which never may (several readers, graph outputs, parameter-derived values,
// mixed part layouts, overlapping pooling windows, library kernels). The
// return value counts merged kernels, so each case pins it exactly.
//
// Then end to end through the real host device: a DenseNet/GoogLeNet-like
// graph whose concat parts have 32 channels (blocked on hosts with vector
// layouts, row-major under SOL_LAYOUT=plain), compiled with depth-first
// fusion on and off and checked against one naive reference; the counters
// and kernel descriptions show which chains became one kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>
#include <set>
#include <string>

#include "compiled_model_helpers.h"
#include "reference_ops.h"
#include "sol/passes/fuse_depth_first.h"
#include "sol/passes/fuse_elementwise.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
using sol::passes::fuse_depth_first;

using Cluster = std::vector<int>;

bool all_generated(const ir::Graph&, const Cluster&) { return true; }

int cluster_of(const ir::Graph& g, int tensor) { return node_producing(g, tensor).cluster; }

bool cluster_has(const ir::Graph& g, const Cluster& cluster, Op op) {
    for (int n : cluster)
        if (g.nodes()[n].op == op) return true;
    return false;
}

// relu(x1), relu(x2) -> concat -> mul [1,C,1,1] -> add [1,C,1,1] -> relu -> `reader`:
// DenseNet's concat -> BatchNorm -> ReLU with the BatchNorm lowered.
// The parts are kernels of their own (intermediates, so they can be blocked).
struct ConcatChain {
    ir::Graph g;
    int a = -1, b = -1, concat = -1, mul = -1, add = -1, relu = -1, reader = -1;
    explicit ConcatChain(bool with_chain = true) {
        const ir::Shape part_shape{1, 32, 8, 8};
        a = g.add_node(Op::Relu, {g.add_input("x1", part_shape, DType::Float32)}, {}, "part_a");
        b = g.add_node(Op::Relu, {g.add_input("x2", part_shape, DType::Float32)}, {}, "part_b");
        concat = g.add_node(Op::Concat, {a, b}, attrs({{"axis", std::int64_t{1}}}), "cat");
        if (!with_chain) return;
        mul = g.add_node(Op::Mul, {concat, g.add_parameter("scale", {1, 64, 1, 1}, DType::Float32)}, {}, "bn");
        add = g.add_node(Op::Add, {mul, g.add_parameter("shift", {1, 64, 1, 1}, DType::Float32)}, {}, "bn");
        relu = g.add_node(Op::Relu, {add}, {}, "act");
    }
    void read_by_adaptive_pool() {
        reader = g.add_node(Op::AdaptiveAvgPool2d, {relu}, attrs({{"output_size", Ints{1, 1}}}), "gap");
    }
    // Clusters as fuse_elementwise leaves them: parts, concat, chain, reader.
    void fuse(const std::vector<int>& outputs) {
        g.set_outputs(outputs);
        sol::passes::fuse_elementwise(g);
        ASSERT_EQ(cluster_of(g, mul), cluster_of(g, relu)) << ir::to_text(g);
        ASSERT_NE(cluster_of(g, concat), cluster_of(g, mul)) << "a concat anchors no chain";
    }
    void block_parts(int block_a, int block_b) {
        g.set_channel_block(a, block_a);
        g.set_channel_block(b, block_b);
    }
};

// The main case, row-major and with both parts blocked by 16: the concat
// joins the chain, the chain (concat included) joins the pool: five nodes,
// one kernel, two merges; the parts stay kernels of their own.
TEST(FuseDepthFirst, ConcatChainAndGlobalPoolBecomeOneKernel) {
    for (int block : {0, 16}) {
        SCOPED_TRACE("parts blocked by " + std::to_string(block));
        ConcatChain m;
        m.read_by_adaptive_pool();
        m.fuse({m.reader});
        m.block_parts(block, block);
        EXPECT_EQ(fuse_depth_first(m.g, all_generated), 2);
        const int kernel = cluster_of(m.g, m.reader);
        for (int t : {m.concat, m.mul, m.add, m.relu}) EXPECT_EQ(cluster_of(m.g, t), kernel) << "%" << t;
        EXPECT_NE(cluster_of(m.g, m.a), kernel);
        EXPECT_NE(cluster_of(m.g, m.b), kernel);
        EXPECT_NE(cluster_of(m.g, m.a), cluster_of(m.g, m.b));
        expect_valid(m.g, "after fuse_depth_first");
        // A second run finds nothing more to merge.
        EXPECT_EQ(fuse_depth_first(m.g, all_generated), 0);
    }
}

// The concat's value is also read by a second node: it must be stored, so
// it stays its own kernel; the chain still runs inside the pool.
TEST(FuseDepthFirst, ConcatWithTwoReadersStaysInMemory) {
    ConcatChain m;
    m.read_by_adaptive_pool();
    const int other = m.g.add_node(Op::Sigmoid, {m.concat}, {}, "second reader");
    m.fuse({m.reader, other});
    EXPECT_EQ(fuse_depth_first(m.g, all_generated), 1);
    EXPECT_NE(cluster_of(m.g, m.concat), cluster_of(m.g, m.mul));
    EXPECT_NE(cluster_of(m.g, m.concat), cluster_of(m.g, other));
    EXPECT_EQ(cluster_of(m.g, m.relu), cluster_of(m.g, m.reader));
}

// The chain's result is a graph output: the framework needs it in memory,
// so the pool reads it from there; the concat still joins the chain.
TEST(FuseDepthFirst, GraphOutputIsNeverComputedInsideItsReader) {
    ConcatChain m;
    m.read_by_adaptive_pool();
    m.fuse({m.reader, m.relu});
    EXPECT_EQ(fuse_depth_first(m.g, all_generated), 1);
    EXPECT_EQ(cluster_of(m.g, m.concat), cluster_of(m.g, m.relu));
    EXPECT_NE(cluster_of(m.g, m.relu), cluster_of(m.g, m.reader));
}

// The concat itself a graph output: nothing merges into the chain.
TEST(FuseDepthFirst, ConcatThatIsAGraphOutputStaysItsOwnKernel) {
    ConcatChain m;
    m.read_by_adaptive_pool();
    m.fuse({m.reader, m.concat});
    // The concat has one reader node but is also an output; the chain alone
    // goes into the pool.
    EXPECT_EQ(fuse_depth_first(m.g, all_generated), 1);
    EXPECT_NE(cluster_of(m.g, m.concat), cluster_of(m.g, m.mul));
    EXPECT_EQ(cluster_of(m.g, m.relu), cluster_of(m.g, m.reader));
}

// Pooling windows that overlap read each input element (kernel area) /
// (stride area) times; an elementwise chain computed inside the window would
// run that often per element, so it merges only up to 4 reads. A plain
// concat costs nothing to recompute (a load) and always merges.
struct PoolCase {
    Op op;
    std::int64_t kernel, stride;
    bool chain_merges;  // reads per element <= 4
};
void PrintTo(const PoolCase& c, std::ostream* out) {
    *out << ir::name(c.op) << " " << c.kernel << "x" << c.kernel << " stride " << c.stride;
}

class FuseDepthFirstPool : public ::testing::TestWithParam<PoolCase> {};

TEST_P(FuseDepthFirstPool, ElementwiseProducerMergesOnlyWhenWindowsRarelyOverlap) {
    const PoolCase& c = GetParam();
    const ir::Attributes window =
        attrs({{"kernel", Ints{c.kernel, c.kernel}}, {"stride", Ints{c.stride, c.stride}}, {"padding", Ints{1, 1}}});
    {
        ConcatChain m;
        m.reader = m.g.add_node(c.op, {m.relu}, window, "pool");
        m.fuse({m.reader});
        // The concat always joins the chain; the chain joins the pool by the rule.
        EXPECT_EQ(fuse_depth_first(m.g, all_generated), c.chain_merges ? 2 : 1);
        EXPECT_EQ(cluster_of(m.g, m.concat), cluster_of(m.g, m.relu));
        EXPECT_EQ(cluster_of(m.g, m.relu) == cluster_of(m.g, m.reader), c.chain_merges) << ir::to_text(m.g);
    }
    {
        // GoogLeNet: concat -> max pool with no elementwise op between.
        ConcatChain m(/*with_chain=*/false);
        m.reader = m.g.add_node(c.op, {m.concat}, window, "pool");
        m.g.set_outputs({m.reader});
        sol::passes::fuse_elementwise(m.g);
        EXPECT_EQ(fuse_depth_first(m.g, all_generated), 1);
        EXPECT_EQ(cluster_of(m.g, m.concat), cluster_of(m.g, m.reader));
        EXPECT_NE(cluster_of(m.g, m.a), cluster_of(m.g, m.reader));
    }
}

INSTANTIATE_TEST_SUITE_P(Windows, FuseDepthFirstPool,
                         ::testing::Values(PoolCase{Op::MaxPool2d, 3, 1, false},   // 9 reads
                                           PoolCase{Op::AvgPool2d, 3, 1, false},   // 9 reads
                                           PoolCase{Op::MaxPool2d, 3, 2, true},    // 2.25 reads
                                           PoolCase{Op::MaxPool2d, 2, 1, true}),   // 4 reads: the limit
                         [](const ::testing::TestParamInfo<PoolCase>& info) {
                             return std::string(ir::name(info.param.op)) + "_k" +
                                    std::to_string(info.param.kernel) + "_s" + std::to_string(info.param.stride);
                         });

// A product read only by a sum is summed as it is computed (BatchNorm's
// gradient sums in training); one with a second reader, or summed after a
// broadcast of it, stays in memory.
TEST(FuseDepthFirst, ProductReadOnlyByASumIsComputedInsideIt) {
    ir::Graph g;
    const ir::Shape shape{2, 16, 5, 7};
    const int dy = g.add_input("dy", shape, DType::Float32), x = g.add_input("x", shape, DType::Float32);
    const int product = g.add_node(Op::Mul, {dy, x}, {}, "bn_grad");
    const int total = g.add_node(Op::Sum, {product}, attrs({{"axes", Ints{0, 2, 3}}, {"keepdim", std::int64_t{1}}}), "sum");
    const int shared = g.add_node(Op::Mul, {dy, dy}, {}, "square");
    const int mean = g.add_node(Op::Mean, {shared}, attrs({{"axes", Ints{0, 2, 3}}}), "mean");
    g.set_outputs({total, mean, g.add_node(Op::Neg, {shared}, {}, "other reader")});
    sol::passes::fuse_elementwise(g);
    EXPECT_EQ(fuse_depth_first(g, all_generated), 1);
    EXPECT_EQ(cluster_of(g, product), cluster_of(g, total));
    EXPECT_NE(cluster_of(g, shared), cluster_of(g, mean));
}

// One loop nest walks the parts only when they share a layout: a part
// blocked by 16 next to a row-major one (or one blocked by 8) keeps the
// concat in memory. The chain, which reads the stored concat, still joins
// the pool.
TEST(FuseDepthFirst, PartsInDifferentLayoutsKeepTheConcatInMemory) {
    for (const auto& [block_a, block_b] : std::vector<std::pair<int, int>>{{16, 0}, {0, 16}, {16, 8}}) {
        SCOPED_TRACE("parts blocked by " + std::to_string(block_a) + " and " + std::to_string(block_b));
        ConcatChain m;
        m.read_by_adaptive_pool();
        m.fuse({m.reader});
        m.block_parts(block_a, block_b);
        EXPECT_EQ(fuse_depth_first(m.g, all_generated), 1);
        EXPECT_NE(cluster_of(m.g, m.concat), cluster_of(m.g, m.mul));
        EXPECT_NE(cluster_of(m.g, m.concat), cluster_of(m.g, m.reader));
        EXPECT_EQ(cluster_of(m.g, m.relu), cluster_of(m.g, m.reader));
    }
}

// A library kernel (oneDNN) can compute nothing inside it, and its result
// cannot be computed inside a generated kernel: the device's predicate
// decides per cluster.
TEST(FuseDepthFirst, NothingMergesIntoOrOutOfALibraryKernel) {
    {
        // The producer (the concat) is "library": it stays; the chain joins the pool.
        ConcatChain m;
        m.read_by_adaptive_pool();
        m.fuse({m.reader});
        std::set<std::string> asked;
        const auto concat_is_library = [&](const ir::Graph& g, const Cluster& cluster) {
            asked.insert(std::string(ir::name(g.nodes()[cluster.front()].op)));
            return !cluster_has(g, cluster, Op::Concat);
        };
        EXPECT_EQ(fuse_depth_first(m.g, concat_is_library), 1);
        EXPECT_NE(cluster_of(m.g, m.concat), cluster_of(m.g, m.mul));
        EXPECT_EQ(cluster_of(m.g, m.relu), cluster_of(m.g, m.reader));
        EXPECT_TRUE(asked.count("concat")) << "the predicate was asked about the producer";
    }
    {
        // The consumer (the pool) is "library": the concat joins the chain,
        // the chain stays out of the pool.
        ConcatChain m;
        m.read_by_adaptive_pool();
        m.fuse({m.reader});
        const auto pool_is_library = [](const ir::Graph& g, const Cluster& cluster) {
            return !cluster_has(g, cluster, Op::AdaptiveAvgPool2d);
        };
        EXPECT_EQ(fuse_depth_first(m.g, pool_is_library), 1);
        EXPECT_EQ(cluster_of(m.g, m.concat), cluster_of(m.g, m.relu));
        EXPECT_NE(cluster_of(m.g, m.relu), cluster_of(m.g, m.reader));
    }
    {
        // Nothing is generated: nothing moves.
        ConcatChain m;
        m.read_by_adaptive_pool();
        m.fuse({m.reader});
        EXPECT_EQ(fuse_depth_first(m.g, [](const ir::Graph&, const Cluster&) { return false; }), 0);
        EXPECT_NE(cluster_of(m.g, m.concat), cluster_of(m.g, m.mul));
        EXPECT_NE(cluster_of(m.g, m.relu), cluster_of(m.g, m.reader));
    }
}

// The reader must be the first node of its kernel: a concat read by the
// second node of another chain (an add joining a branch) would have to be
// computed in the middle of that chain.
TEST(FuseDepthFirst, ConcatReadInsideAnotherChainIsNotMerged) {
    ConcatChain m(/*with_chain=*/false);
    const int branch = m.g.add_node(Op::Sigmoid, {m.g.add_input("x3", {1, 64, 8, 8}, DType::Float32)}, {}, "");
    const int joined = m.g.add_node(Op::Add, {branch, m.concat}, {}, "");
    const int out = m.g.add_node(Op::Relu, {joined}, {}, "");
    m.g.set_outputs({out});
    sol::passes::fuse_elementwise(m.g);
    ASSERT_EQ(cluster_of(m.g, joined), cluster_of(m.g, branch)) << "the add rides in the sigmoid's kernel";
    EXPECT_EQ(fuse_depth_first(m.g, all_generated), 0);
    EXPECT_NE(cluster_of(m.g, m.concat), cluster_of(m.g, joined));
}

// A concat of parameters is computed once per weight update, not per call:
// merging it into the per-call chain would recompute it every call.
TEST(FuseDepthFirst, ParameterDerivedConcatStaysInTheWeightStage) {
    ir::Graph g;
    const int wa = g.add_parameter("wa", {1, 16, 4, 4}, DType::Float32);
    const int wb = g.add_parameter("wb", {1, 16, 4, 4}, DType::Float32);
    const int concat = g.add_node(Op::Concat, {wa, wb}, attrs({{"axis", std::int64_t{1}}}), "");
    const int mul = g.add_node(Op::Mul, {concat, g.add_input("x", {1, 32, 4, 4}, DType::Float32)}, {}, "");
    const int out = g.add_node(Op::Relu, {mul}, {}, "");
    g.set_outputs({out});
    sol::passes::fuse_elementwise(g);
    ASSERT_TRUE(g.parameter_derived()[concat]);
    EXPECT_EQ(fuse_depth_first(g, all_generated), 0);
    EXPECT_NE(cluster_of(g, concat), cluster_of(g, mul));
}

// An elementwise reader takes the concat only at its own shape: one that
// broadcasts the concat up to a larger result would compute each concat
// element several times through the part tables.
TEST(FuseDepthFirst, ElementwiseReaderMustNotBroadcastTheConcat) {
    ir::Graph g;
    const int a = g.add_node(Op::Relu, {g.add_input("x1", {1, 16, 1, 1}, DType::Float32)}, {}, "");
    const int b = g.add_node(Op::Relu, {g.add_input("x2", {1, 16, 1, 1}, DType::Float32)}, {}, "");
    const int concat = g.add_node(Op::Concat, {a, b}, attrs({{"axis", std::int64_t{1}}}), "");
    const int wide = g.add_node(Op::Add, {concat, g.add_input("y", {1, 32, 8, 8}, DType::Float32)}, {}, "");
    g.set_outputs({wide});
    sol::passes::fuse_elementwise(g);
    EXPECT_EQ(fuse_depth_first(g, all_generated), 0);
    EXPECT_NE(cluster_of(g, concat), cluster_of(g, wide));
}

// Only channel concats of images are walked by the part tables: a concat
// along another axis stays a copy of its own.
TEST(FuseDepthFirst, ConcatAlongAnotherAxisIsNotMerged) {
    ir::Graph g;
    const int a = g.add_node(Op::Relu, {g.add_input("x1", {1, 16, 4, 8}, DType::Float32)}, {}, "");
    const int b = g.add_node(Op::Relu, {g.add_input("x2", {1, 16, 4, 8}, DType::Float32)}, {}, "");
    const int concat = g.add_node(Op::Concat, {a, b}, attrs({{"axis", std::int64_t{2}}}), "");
    const int out = g.add_node(Op::Relu, {concat}, {}, "");
    const int pooled = g.add_node(Op::AdaptiveAvgPool2d, {out}, attrs({{"output_size", Ints{1, 1}}}), "");
    g.set_outputs({pooled});
    sol::passes::fuse_elementwise(g);
    // relu alone is a chain: it still moves into the pool (1 merge); the
    // height concat does not move into the relu.
    EXPECT_EQ(fuse_depth_first(g, all_generated), 1);
    EXPECT_NE(cluster_of(g, concat), cluster_of(g, out));
    EXPECT_EQ(cluster_of(g, out), cluster_of(g, pooled));
}

// ---------------------------------------------------------------------------
// End to end through the host device.

namespace ref = soltest::reference;
using ref::Index;

constexpr Index N = 2, CIN = 8, H = 12, W = 12, C = 32;
constexpr Index OC = 16, GAP = 2, PH = 7, PW = 7;  // 3x3 s2 p1 ceil_mode on 12: 7 (6 without ceil)

// x [2, 8, 12, 12]:
//   a = relu(conv1(x) + b1), b = relu(conv2(x) + b2)           [2, 32, 12, 12], 3x3 pad 1
//   out0 = conv3(relu(cat(a, b) * s1 + t1))                   [2, 16, 12, 12]  DenseNet layer, 1x1
//   out1 = max_pool 3x3 s2 p1 ceil (cat(b, a))                [2, 64, 7, 7]    GoogLeNet
//   out2 = adaptive_avg_pool 2x2 (relu(cat(a, b, a) * s3 + t3))  [2, 96, 2, 2]  DenseNet tail
//   out3 = avg_pool 3x3 s2 p1 ceil (relu(cat(b, a) * s4 + t4))   [2, 64, 7, 7]  padded window
// a and b have several readers, so they are stored; every concat has one.
ir::Graph depth_first_network() {
    ir::Graph g;
    auto param = [&g](const std::string& name, ir::Shape shape) {
        return g.add_parameter(name, shape, DType::Float32);
    };
    auto cat = [&g](std::vector<int> parts) {
        return g.add_node(Op::Concat, std::move(parts), attrs({{"axis", std::int64_t{1}}}), "cat");
    };
    // relu(v * s + t): BatchNorm as lower_batchnorm leaves it.
    auto bn_relu = [&](int v, const std::string& suffix) {
        const Index channels = g.tensor(v).shape[1];
        const int scaled = g.add_node(Op::Mul, {v, param("s" + suffix, {1, channels, 1, 1})}, {}, "bn" + suffix);
        const int shifted = g.add_node(Op::Add, {scaled, param("t" + suffix, {1, channels, 1, 1})}, {}, "bn" + suffix);
        return g.add_node(Op::Relu, {shifted}, {}, "relu" + suffix);
    };
    const Ints p1{1, 1};
    const ir::Attributes window =
        attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", p1}, {"ceil_mode", std::int64_t{1}}});
    const int x = g.add_input("x", {N, CIN, H, W}, DType::Float32);
    const int a = g.add_node(Op::Relu,
                             {g.add_node(Op::Conv2d, {x, param("w1", {C, CIN, 3, 3}), param("b1", {C})},
                                         attrs({{"padding", p1}}), "conv1")},
                             {}, "relu_a");
    const int b = g.add_node(Op::Relu,
                             {g.add_node(Op::Conv2d, {x, param("w2", {C, CIN, 3, 3}), param("b2", {C})},
                                         attrs({{"padding", p1}}), "conv2")},
                             {}, "relu_b");
    const int out0 = g.add_node(Op::Conv2d, {bn_relu(cat({a, b}), "1"), param("w3", {OC, 2 * C, 1, 1})}, {}, "conv3");
    const int out1 = g.add_node(Op::MaxPool2d, {cat({b, a})}, window, "max");
    const int out2 = g.add_node(Op::AdaptiveAvgPool2d, {bn_relu(cat({a, b, a}), "3")},
                                attrs({{"output_size", Ints{GAP, GAP}}}), "gap");
    const int out3 = g.add_node(Op::AvgPool2d, {bn_relu(cat({b, a}), "4")}, window, "avg");
    g.set_outputs({out0, out1, out2, out3});
    return g;
}

// Channel concatenation of NCHW tensors with H*W pixels per channel.
std::vector<float> concat_channels(const std::vector<std::pair<const std::vector<float>*, Index>>& parts) {
    std::vector<float> out;
    for (Index n = 0; n < N; ++n)
        for (const auto& [data, channels] : parts)
            out.insert(out.end(), data->begin() + n * channels * H * W, data->begin() + (n + 1) * channels * H * W);
    return out;
}

std::vector<float> bn_relu_reference(std::vector<float> v, const std::vector<float>& s, const std::vector<float>& t) {
    const Index channels = static_cast<Index>(s.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        const Index c = static_cast<Index>(i / (H * W)) % channels;
        v[i] = std::max(v[i] * s[c] + t[c], 0.0f);
    }
    return v;
}

std::vector<std::vector<float>> depth_first_expected(const Tensors& in, const Tensors& p) {
    Index oh = 0, ow = 0;
    ref::Conv2dParams pad1;
    pad1.pad_h = pad1.pad_w = 1;
    const auto a = ref::relu(ref::conv2d(in.at("x"), N, CIN, H, W, p.at("w1"), C, 3, 3, p.at("b1"), pad1, oh, ow));
    const auto b = ref::relu(ref::conv2d(in.at("x"), N, CIN, H, W, p.at("w2"), C, 3, 3, p.at("b2"), pad1, oh, ow));
    const auto h1 = bn_relu_reference(concat_channels({{&a, C}, {&b, C}}), p.at("s1"), p.at("t1"));
    const auto out0 = ref::conv2d(h1, N, 2 * C, H, W, p.at("w3"), OC, 1, 1, {}, ref::Conv2dParams{}, oh, ow);
    const ref::PoolParams window{3, 3, 2, 2, 1, 1, 1, 1, /*ceil_mode=*/true};
    const auto out1 = ref::max_pool2d(concat_channels({{&b, C}, {&a, C}}), N * 2 * C, H, W, window, oh, ow);
    EXPECT_EQ(oh, PH);
    EXPECT_EQ(ow, PW);
    const auto h3 = bn_relu_reference(concat_channels({{&a, C}, {&b, C}, {&a, C}}), p.at("s3"), p.at("t3"));
    const auto out2 = ref::adaptive_avg_pool2d(h3, N * 3 * C, H, W, GAP, GAP);
    const auto h4 = bn_relu_reference(concat_channels({{&b, C}, {&a, C}}), p.at("s4"), p.at("t4"));
    const auto out3 = ref::avg_pool2d(h4, N * 2 * C, H, W, window, oh, ow);
    return {out0, out1, out2, out3};
}

// How many descriptions start with `prefix` (descriptions read
// "concat + mul + add + relu -> f32[...]  # origins"; a library call's or a
// tuned one's starts with "[...] ").
int count_starting_with(const std::vector<std::string>& descriptions, const std::string& prefix) {
    return static_cast<int>(std::count_if(descriptions.begin(), descriptions.end(),
                                          [&](const std::string& d) { return d.rfind(prefix, 0) == 0; }));
}

std::string joined(const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& line : lines) text += "\n  " + line;
    return text;
}

struct DepthFirstSetting {
    const char* name;
    std::optional<std::string> layout;       // SOL_LAYOUT
    std::optional<std::string> depth_first;  // SOL_DEPTH_FIRST
};
void PrintTo(const DepthFirstSetting& setting, std::ostream* out) { *out << setting.name; }

class CompiledDepthFirstTest : public FreshCache, public ::testing::WithParamInterface<DepthFirstSetting> {
protected:
    // The generated C++ of the one module this test compiled (the cache is fresh).
    std::string generated_source() const {
        std::string text;
        for (const auto& entry : std::filesystem::directory_iterator(cache_.path()))
            if (entry.path().extension() == ".cpp") {
                std::ostringstream content;
                content << std::ifstream(entry.path()).rdbuf();
                text += content.str();
            }
        return text;
    }
};

// The layout the host device gives the concat parts (relu outputs of 32
// channels): 32 (NHWC) on AVX-512, 16 there under SOL_LAYOUT=blocked, 8 on
// AVX2, 0 without vector layouts or under SOL_LAYOUT=plain. Both parts always
// get the same one here.
int part_block(const ir::Graph& fused) {
    ir::Graph lowered = fused;  // the compiled model lowers its own copy the same way
    sol::devices::find_device("x86", 0).lower(lowered, "");
    std::set<int> blocks;
    for (const ir::Node& node : lowered.nodes())
        if (node.origin == "relu_a" || node.origin == "relu_b")
            blocks.insert(lowered.tensor(node.output).channel_block);
    EXPECT_EQ(blocks.size(), 1u) << "both parts in one layout";
    return blocks.empty() ? -1 : *blocks.begin();
}

// Merged kernels read the parts through the part tables, blocked (default on
// a host with vector layouts) or row-major (plain); with depth-first off
// every concat is stored. All three must give the reference's numbers, and
// the counters must show which way the model was built.
TEST_P(CompiledDepthFirstTest, DenseNetLikeGraphMatchesTheReference) {
    const DepthFirstSetting& setting = GetParam();
    ScopedEnv layout("SOL_LAYOUT", setting.layout);
    ScopedEnv depth_first("SOL_DEPTH_FIRST", setting.depth_first);
    ScopedEnv backends("SOL_BACKENDS", std::nullopt);
    ir::Graph g = depth_first_network();
    auto model = compile_for_host(g);

    const bool on = !setting.depth_first.has_value();
    const std::vector<std::string> kernels = model->kernel_descriptions();
    // Four concats, each read by one generated kernel: the DenseNet layer's
    // BN chain, the max pool, the BN chain + global pool, the BN chain + pool.
    EXPECT_EQ(model->depth_first_calls(), on ? 4 : 0) << joined(kernels);
    EXPECT_EQ(count_starting_with(kernels, "concat + mul + add + relu -> "), on ? 1 : 0) << joined(kernels);
    EXPECT_EQ(count_starting_with(kernels, "concat + max_pool2d -> "), on ? 1 : 0) << joined(kernels);
    EXPECT_EQ(count_starting_with(kernels, "concat + mul + add + relu + adaptive_avg_pool2d -> "), on ? 1 : 0)
        << joined(kernels);
    EXPECT_EQ(count_starting_with(kernels, "concat + mul + add + relu + avg_pool2d -> "), on ? 1 : 0)
        << joined(kernels);
    // Off: every concat is a kernel of its own, stored for its reader.
    EXPECT_EQ(count_starting_with(kernels, "concat -> "), on ? 0 : 4) << joined(kernels);
    EXPECT_EQ(count_starting_with(kernels, "concat + "), on ? 4 : 0) << joined(kernels);
    // Which addressing the merged kernels use: per channel block where the
    // host blocks the parts, per channel where it does not (plain).
    const int block = part_block(g);
    if (setting.layout == "plain") EXPECT_EQ(block, 0) << "SOL_LAYOUT=plain";
    if (setting.layout == "blocked") EXPECT_EQ(block, 16) << "SOL_LAYOUT=blocked";
    if (block > 0) std::cout << "[          ] concat parts blocked by " << block << "\n";
    const std::string source = generated_source();
    ASSERT_FALSE(source.empty());
    EXPECT_EQ(source.find("each channel block is read from its part") != std::string::npos, on && block > 0);
    EXPECT_EQ(source.find("each channel is read from its part") != std::string::npos, on && block == 0);

    Tensors inputs{{"x", random_floats(N * CIN * H * W, 51, -2, 2)}};
    Tensors params{{"w1", random_floats(C * CIN * 9, 52, -0.3f, 0.3f)}, {"b1", random_floats(C, 53)},
                   {"w2", random_floats(C * CIN * 9, 54, -0.3f, 0.3f)}, {"b2", random_floats(C, 55)},
                   {"w3", random_floats(OC * 2 * C, 56, -0.3f, 0.3f)}};
    for (const auto& [suffix, channels, seed] : std::vector<std::tuple<std::string, Index, unsigned>>{
             {"1", 2 * C, 60}, {"3", 3 * C, 62}, {"4", 2 * C, 64}}) {
        // Scales of both signs and shifts around zero: the ReLU clips a real
        // share of each channel, so a wrong channel's scale shows.
        params["s" + suffix] = random_floats(channels, seed, -1.5f, 1.5f);
        params["t" + suffix] = random_floats(channels, seed + 1, -0.5f, 0.5f);
    }
    const auto want = depth_first_expected(inputs, params);
    auto out = run_model(*model, inputs, params, true);
    ASSERT_EQ(out.size(), want.size());
    // Values are O(1); the largest sum (conv3) runs over 64 terms and the
    // reference accumulates in double: 1e-4 covers float reassociation, not
    // a misplaced channel or pixel.
    for (std::size_t k = 0; k < out.size(); ++k) {
        ASSERT_EQ(out[k].size(), want[k].size()) << "output " << k;
        EXPECT_LE(max_abs_difference(out[k], want[k]), 1e-4f) << "output " << k << " with " << setting.name;
    }
    // A second call with new inputs: nothing stale from the first.
    inputs["x"] = random_floats(N * CIN * H * W, 57, -2, 2);
    const auto want2 = depth_first_expected(inputs, params);
    out = run_model(*model, inputs, params, false);
    for (std::size_t k = 0; k < out.size(); ++k)
        EXPECT_LE(max_abs_difference(out[k], want2[k]), 1e-4f) << "second call, output " << k;
}

INSTANTIATE_TEST_SUITE_P(
    Settings, CompiledDepthFirstTest,
    ::testing::Values(DepthFirstSetting{"default", std::nullopt, std::nullopt},
                      DepthFirstSetting{"blocked", std::string("blocked"), std::nullopt},
                      DepthFirstSetting{"plain", std::string("plain"), std::nullopt},
                      DepthFirstSetting{"depth_first_off", std::nullopt, std::string("off")}),
    [](const ::testing::TestParamInfo<DepthFirstSetting>& info) { return std::string(info.param.name); });

// End to end: sums of merged chains (a product, a scaled and rectified
// product) give the reference's numbers.
TEST(CompiledDepthFirst, SumOfAProductMatchesTheReference) {
    ScopedEnv fresh("SOL_CACHE_DIR", TempDir().path().string());
    ir::Graph g;
    const ir::Shape shape{2, 16, 5, 7};
    const int dy = g.add_input("dy", shape, DType::Float32), x = g.add_input("x", shape, DType::Float32);
    const int scaled = g.add_node(Op::Mul, {x, g.add_parameter("w", {1, 16, 1, 1}, DType::Float32)}, {}, "");
    const int product = g.add_node(Op::Mul, {dy, g.add_node(Op::Relu, {scaled}, {}, "")}, {}, "");
    g.set_outputs({g.add_node(Op::Sum, {product}, attrs({{"axes", Ints{0, 2, 3}}, {"keepdim", std::int64_t{1}}}), ""),
                   g.add_node(Op::Mean, {g.add_node(Op::Mul, {dy, x}, {}, "")}, attrs({{"axes", Ints{0, 2, 3}}}), "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->depth_first_calls(), 2) << joined(model->kernel_descriptions());
    Tensors in{{"dy", random_floats(2 * 16 * 35, 1)}, {"x", random_floats(2 * 16 * 35, 2)}};
    Tensors p{{"w", random_floats(16, 3)}};
    const auto out = run_model(*model, in, p, true);
    std::vector<float> sums(16, 0.0f), means(16, 0.0f);
    for (std::size_t i = 0; i < in["x"].size(); ++i) {
        const std::size_t c = (i / 35) % 16;
        sums[c] += in["dy"][i] * std::max(0.0f, in["x"][i] * p["w"][c]);
        means[c] += in["dy"][i] * in["x"][i] / 70.0f;
    }
    EXPECT_LE(max_abs_difference(out[0], sums), 1e-4f);
    EXPECT_LE(max_abs_difference(out[1], means), 1e-5f);
}

// BatchNorm-gradient-like sums of a product of a channel-blocked convolution
// output and a row-major tensor: per-channel sums walk whole blocks (and the
// plain layout the usual loops); both give the reference's numbers, also for
// images one pixel wide.
class CompiledBlockedSum : public ::testing::TestWithParam<const char*> {};

TEST_P(CompiledBlockedSum, SumOfABlockedProductMatchesTheReference) {
    ScopedEnv layout("SOL_LAYOUT", GetParam()[0] ? std::optional<std::string>(GetParam()) : std::nullopt);
    // Images 6 wide, and 1 wide: then the pixel index must walk the rows.
    for (const std::int64_t width : {6, 1}) {
        SCOPED_TRACE("width " + std::to_string(width));
        TempDir cache;
        ScopedEnv fresh("SOL_CACHE_DIR", cache.path().string());
        const std::int64_t plane = 6 * width;
        ir::Graph g;
        const int x = g.add_input("x", {2, 16, 6, width}, DType::Float32);
        const int dy = g.add_input("dy", {2, 32, 6, width}, DType::Float32);
        const int y = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {32, 16, 3, 3}, DType::Float32)},
                                 attrs({{"padding", Ints{1, 1}}}), "conv");
        const int product = g.add_node(Op::Mul, {y, dy}, {}, "");
        g.set_outputs({g.add_node(Op::Sum, {product}, attrs({{"axes", Ints{0, 2, 3}}, {"keepdim", std::int64_t{1}}}), ""),
                       g.add_node(Op::Mean, {g.add_node(Op::Neg, {y}, {}, "")}, attrs({{"axes", Ints{0, 2, 3}}}), "")});
        auto model = compile_for_host(g);
        Tensors in{{"x", random_floats(2 * 16 * plane, 1)}, {"dy", random_floats(2 * 32 * plane, 2)}};
        Tensors p{{"w", random_floats(32 * 16 * 9, 3)}};
        const auto out = run_model(*model, in, p, true);
        ref::Index oh = 0, ow = 0;
        const auto conv = ref::conv2d(in["x"], 2, 16, 6, width, p["w"], 32, 3, 3, {}, {.pad_h = 1, .pad_w = 1}, oh, ow);
        std::vector<float> sums(32, 0.0f), means(32, 0.0f);
        for (std::size_t i = 0; i < conv.size(); ++i) {
            const std::size_t c = (i / plane) % 32;
            sums[c] += conv[i] * in["dy"][i];
            means[c] -= conv[i] / static_cast<float>(2 * plane);
        }
        EXPECT_LE(max_abs_difference(out[0], sums), 1e-3f) << joined(model->kernel_descriptions());
        EXPECT_LE(max_abs_difference(out[1], means), 1e-4f);
        // The convolution's output is blocked on hosts with vector layouts (x86
        // here): then the block-walking sum must be the one that ran.
        std::string library = model->library_path();
        std::stringstream source;
        source << std::ifstream(library.substr(0, library.size() - 3) + ".cpp").rdbuf();
        EXPECT_EQ(source.str().find("v[c1] +=") != std::string::npos, std::string(GetParam()) != "plain") << source.str();
    }
}

INSTANTIATE_TEST_SUITE_P(Layouts, CompiledBlockedSum, ::testing::Values("", "blocked", "plain"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                             return std::string(info.param[0] ? info.param : "default");
                         });

}  // namespace
