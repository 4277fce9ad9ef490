// merge_depthwise_into_pointwise: which depthwise convolutions join the 1x1
// convolution before them in one kernel (checked with a stand-in for the
// device's check), and, through the real host device and oneDNN, that the
// fused kernel computes conv1x1 -> ReLU6 -> depthwise 3x3 -> ReLU6 as the
// 7-loop reference does, also after its weights change.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>

#include "compiled_model_helpers.h"
#include "reference_ops.h"
#include "sol/passes/fuse_elementwise.h"
#include "sol/passes/merge_depthwise_into_pointwise.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;

// MobileNetV2's second block: x [2, 16, 56, 56] -> the previous block's 1x1
// projection (16 channels, so its result is channel-blocked between two
// kernels, as in a network) -> conv1x1 to 96 channels -> clamp(0, 6) ->
// depthwise 3x3 (stride `stride`, padding 1) -> clamp(0, 6), then, when
// `project`, a 1x1 convolution back to 16 channels.
struct Expansion {
    ir::Graph g;
    int expand = -1, expanded = -1, depthwise = -1, filtered = -1;
};

Expansion expansion(std::int64_t stride, bool project, std::int64_t depthwise_groups = 96) {
    Expansion e;
    ir::Graph& g = e.g;
    const ir::Attributes relu6 = attrs({{"min", 0.0}, {"max", 6.0}});
    const int x = g.add_input("x", {2, 16, 56, 56}, DType::Float32);
    const int previous = g.add_node(Op::Conv2d, {x, g.add_parameter("w0", {16, 16, 1, 1}, DType::Float32)}, {}, "previous");
    e.expand = g.add_node(Op::Conv2d, {previous, g.add_parameter("w1", {96, 16, 1, 1}, DType::Float32),
                                       g.add_parameter("b1", {96}, DType::Float32)}, {}, "expand");
    e.expanded = g.add_node(Op::Clamp, {e.expand}, relu6, "expand_relu6");
    e.depthwise = g.add_node(Op::Conv2d,
                             {e.expanded, g.add_parameter("w2", {96, 96 / depthwise_groups, 3, 3}, DType::Float32),
                              g.add_parameter("b2", {96}, DType::Float32)},
                             attrs({{"stride", Ints{stride, stride}}, {"padding", Ints{1, 1}},
                                    {"groups", depthwise_groups}}),
                             "depthwise");
    e.filtered = g.add_node(Op::Clamp, {e.depthwise}, relu6, "depthwise_relu6");
    if (project)
        g.set_outputs({g.add_node(Op::Conv2d, {e.filtered, g.add_parameter("w3", {16, 96, 1, 1}, DType::Float32)}, {},
                                  "project")});
    else
        g.set_outputs({e.filtered});
    return e;
}

// The stand-in check records what it was asked and answers `answer`.
struct Check {
    bool answer = true;
    std::vector<std::vector<int>> asked;
    sol::passes::FusedPairCheck function() {
        return [this](const ir::Graph&, const std::vector<int>& merged) {
            asked.push_back(merged);
            return answer;
        };
    }
};

int cluster_of(const ir::Graph& g, int tensor) { return node_producing(g, tensor).cluster; }

TEST(MergeDepthwiseIntoPointwise, TheDepthwiseClusterJoinsTheOneByOneClusterBeforeIt) {
    Expansion e = expansion(2, true);
    sol::passes::fuse_elementwise(e.g);
    ASSERT_NE(cluster_of(e.g, e.expanded), cluster_of(e.g, e.filtered));
    Check check;
    EXPECT_EQ(sol::passes::merge_depthwise_into_pointwise(e.g, check.function()), 1);
    ASSERT_EQ(check.asked.size(), 1u) << "only the expansion pair is a candidate";
    std::vector<Op> asked_ops;
    for (int n : check.asked.front()) asked_ops.push_back(e.g.nodes()[n].op);
    EXPECT_EQ(asked_ops, (std::vector<Op>{Op::Conv2d, Op::Clamp, Op::Conv2d, Op::Clamp})) << "in execution order";
    EXPECT_EQ(cluster_of(e.g, e.expanded), cluster_of(e.g, e.filtered)) << "one kernel";
    EXPECT_EQ(cluster_of(e.g, e.expand), cluster_of(e.g, e.filtered));
    EXPECT_NE(cluster_of(e.g, e.g.outputs()[0]), cluster_of(e.g, e.filtered)) << "the projection stays apart";
}

TEST(MergeDepthwiseIntoPointwise, NothingMergesWhereTheDeviceSaysNo) {
    Expansion e = expansion(1, false);
    sol::passes::fuse_elementwise(e.g);
    Check check{false};
    EXPECT_EQ(sol::passes::merge_depthwise_into_pointwise(e.g, check.function()), 0);
    EXPECT_EQ(check.asked.size(), 1u);
    EXPECT_NE(cluster_of(e.g, e.expanded), cluster_of(e.g, e.filtered));
}

TEST(MergeDepthwiseIntoPointwise, OnlyASoleReaderThatIsDepthwiseIsAsked) {
    Expansion read_twice = expansion(2, false);
    read_twice.g.set_outputs({read_twice.filtered, read_twice.expanded});  // the expanded tensor must exist
    sol::passes::fuse_elementwise(read_twice.g);
    Check check;
    EXPECT_EQ(sol::passes::merge_depthwise_into_pointwise(read_twice.g, check.function()), 0);

    Expansion full = expansion(2, false, 1);  // a full 3x3 convolution reads the expansion
    sol::passes::fuse_elementwise(full.g);
    EXPECT_EQ(sol::passes::merge_depthwise_into_pointwise(full.g, check.function()), 0);
    EXPECT_TRUE(check.asked.empty());
}

std::vector<float> reference(const Tensors& in, const Tensors& p, std::int64_t stride) {
    auto relu6 = [](std::vector<float> v) {
        for (float& x : v) x = std::min(std::max(x, 0.0f), 6.0f);
        return v;
    };
    ref::Index oh = 0, ow = 0;
    const auto previous = ref::conv2d(in.at("x"), 2, 16, 56, 56, p.at("w0"), 16, 1, 1, {}, {}, oh, ow);
    const auto expanded = relu6(ref::conv2d(previous, 2, 16, 56, 56, p.at("w1"), 96, 1, 1, p.at("b1"), {}, oh, ow));
    ref::Conv2dParams depthwise;
    depthwise.stride_h = depthwise.stride_w = stride;
    depthwise.pad_h = depthwise.pad_w = 1;
    depthwise.groups = 96;
    return relu6(ref::conv2d(expanded, 2, 96, 56, 56, p.at("w2"), 96, 3, 3, p.at("b2"), depthwise, oh, ow));
}

// Channel blocks of 16, where oneDNN has its fused kernel (for this much work:
// at 16x16 pixels it runs the two one after the other): the stride-2 pair is
// one oneDNN call on AVX-512 hosts; the stride-1 pair stays two kernels
// (fused, it gained nothing), and so does every pair on NHWC tensors, where
// oneDNN's fused kernel computes wrong numbers. All match the reference,
// before and after new weights (the depthwise weights are reordered again,
// too).
class FusedDepthwiseTest : public FreshCache,
                           public ::testing::WithParamInterface<std::tuple<std::int64_t, std::string>> {};

TEST_P(FusedDepthwiseTest, MatchesTheReference) {
    const auto& [stride, layout_name] = GetParam();
    ScopedEnv layout("SOL_LAYOUT", layout_name);
    Expansion e = expansion(stride, false);
    auto model = compile_for_host(e.g);
#ifdef SOL_HAVE_DNNL
    if (stride == 2 && layout_name == "blocked" && has_avx512_core()) {
        EXPECT_EQ(model->kernel_calls(), 2u) << "the previous conv, then conv1x1 -> depthwise in one kernel";
        EXPECT_EQ(model->library_calls(), 2u) << "both oneDNN's";
        EXPECT_GE(model->library_kept_bytes(), (96 * 16 + 96 * 9) * sizeof(float)) << "both weights are kept reordered";
    }
#endif
    if (stride == 1 || layout_name == "channels_last") EXPECT_EQ(model->kernel_calls(), 3u);

    Tensors inputs{{"x", random_floats(2 * 16 * 56 * 56, 31, -2, 2)}};
    // Small weights, so that few values sit on ReLU6's bounds.
    Tensors params{{"w0", random_floats(16 * 16, 30, -0.3f, 0.3f)}, {"w1", random_floats(96 * 16, 32, -0.3f, 0.3f)},
                   {"b1", random_floats(96, 33)}, {"w2", random_floats(96 * 9, 34, -0.5f, 0.5f)},
                   {"b2", random_floats(96, 35)}};
    auto out = run_model(*model, inputs, params, true);
    EXPECT_LE(max_abs_difference(out[0], reference(inputs, params, stride)), 1e-4f);
    for (float& w : params["w2"]) w = -w;
    for (float& w : params["w1"]) w *= 0.5f;
    out = run_model(*model, inputs, params, true);
    EXPECT_LE(max_abs_difference(out[0], reference(inputs, params, stride)), 1e-4f) << "after new weights";
}

INSTANTIATE_TEST_SUITE_P(StridesAndLayouts, FusedDepthwiseTest,
                         ::testing::Combine(::testing::Values(std::int64_t{1}, std::int64_t{2}),
                                            ::testing::Values(std::string("blocked"), std::string("channels_last"))));

}  // namespace
