// passes::run_pipeline end to end: a small network written the way a
// framework front end emits it comes out canonical, folded and fused.
#include <gtest/gtest.h>

#include <set>

#include "sol/error.h"
#include "sol/passes/pipeline.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

TEST(Pipeline, ConvBnRelu6BlockBecomesOneKernelPlusWeightKernels) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d, {x, g.add_parameter("conv.weight", {4, 3, 3, 3}, DType::Float32)},
                                attrs({{"padding", Ints{1, 1}}}), "conv");
    std::vector<int> bn_inputs{conv};
    for (const char* name : {"bn.running_mean", "bn.running_var", "bn.weight", "bn.bias"})
        bn_inputs.push_back(g.add_parameter(name, {4}, DType::Float32));
    const int bn = g.add_node(Op::BatchNorm, bn_inputs, attrs({{"eps", 1e-5}}), "bn");
    const int act = g.add_node(Op::Relu6, {bn}, {}, "act");
    const int same = g.add_node(Op::Identity, {act}, {}, "dropout");
    const int scaled = g.add_node(Op::Mul, {same, g.add_constant(1.0, DType::Float32)}, {}, "scale");
    // A dead branch with its own parameter (an auxiliary head).
    g.add_node(Op::Linear, {g.add_node(Op::Reshape, {act}, attrs({{"shape", Ints{1, -1}}}), "flatten"),
                            g.add_parameter("aux.weight", {10, 256}, DType::Float32)},
               {}, "aux");
    const int pooled = g.add_node(Op::AdaptiveAvgPool2d, {scaled}, attrs({{"output_size", Ints{1, 1}}}), "pool");
    const int flat = g.add_node(Op::Reshape, {pooled}, attrs({{"shape", Ints{1, -1}}}), "flatten");
    const int logits = g.add_node(Op::Linear,
                                  {flat, g.add_parameter("fc.weight", {5, 4}, DType::Float32),
                                   g.add_parameter("fc.bias", {5}, DType::Float32)},
                                  {}, "fc");
    const int probs = g.add_node(Op::Softmax, {logits}, attrs({{"axis", std::int64_t{-1}}}), "softmax");
    g.set_outputs({probs});

    const sol::passes::PipelineReport report = sol::passes::run_pipeline(g);
    expect_valid(g, "after run_pipeline");

    for (Op gone : {Op::BatchNorm, Op::Relu6, Op::Identity, Op::Hardtanh})
        EXPECT_EQ(count_op(g, gone), 0) << ir::name(gone) << " left in\n" << ir::to_text(g);
    EXPECT_FALSE(has_parameter(g, "aux.weight")) << "the dead head's weight is not asked for";
    for (const char* name : {"conv.weight", "bn.running_mean", "bn.running_var", "bn.weight", "bn.bias", "fc.weight",
                             "fc.bias"})
        EXPECT_TRUE(has_parameter(g, name)) << name;

    const auto derived = g.parameter_derived();
    std::set<int> per_call_kernels, weight_kernels;
    int fused = 0;
    std::set<int> seen;
    for (const ir::Node& node : g.nodes()) {
        ASSERT_GE(node.cluster, 0);
        (derived[node.output] ? weight_kernels : per_call_kernels).insert(node.cluster);
        if (!seen.insert(node.cluster).second) ++fused;
        EXPECT_FALSE(ir::has_trait(node.op, ir::Lowered)) << ir::name(node.op);
    }
    for (int k : weight_kernels) EXPECT_EQ(per_call_kernels.count(k), 0u) << "kernel " << k << " mixes stages";
    EXPECT_EQ(report.fused_nodes, fused);

    // conv (+ folded bias) + clamp is one kernel; the per-call kernels are
    // conv+clamp, pool, reshape, linear, softmax.
    const ir::Node& conv_node = node_producing(g, conv);
    EXPECT_EQ(conv_node.inputs.size(), 3u);
    int clamp_count = 0;
    for (const ir::Node& node : g.nodes())
        if (node.op == Op::Clamp) {
            ++clamp_count;
            EXPECT_EQ(node.cluster, conv_node.cluster) << ir::to_text(g);
            EXPECT_EQ(node.attrs.get_float("max"), 6.0);
        }
    EXPECT_EQ(clamp_count, 1);
    EXPECT_GT(count_op(g, Op::Mul), 0);  // the folding arithmetic
    for (const ir::Node& node : g.nodes())
        if (node.op == Op::Mul) {
            EXPECT_TRUE(derived[node.output]) << "x * 1 must be gone:\n" << ir::to_text(g);
        }
    EXPECT_EQ(per_call_kernels.size(), 5u) << ir::to_text(g);
    const ir::Node& softmax = node_producing(g, g.outputs()[0]);
    EXPECT_EQ(softmax.op, Op::Softmax);
    EXPECT_EQ(softmax.attrs.get_int("axis"), 1);
}

TEST(Pipeline, RejectsABrokenInputGraphBeforeTheFirstPass) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int a = g.add_node(Op::Relu, {x}, {}, "");
    g.set_outputs({g.add_node(Op::Exp, {a}, {}, "")});
    std::swap(g.nodes()[0], g.nodes()[1]);
    try {
        sol::passes::run_pipeline(g);
        FAIL() << "a graph out of order must be rejected";
    } catch (const sol::Error& error) {
        EXPECT_NE(std::string(error.what()).find("before the first pass"), std::string::npos) << error.what();
    }
}

TEST(Pipeline, GraphThatBecomesEmptyStillVerifies) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int y = g.add_node(Op::Identity, {x}, {}, "");
    g.set_outputs({g.add_node(Op::Add, {y, g.add_constant(0.0, DType::Float32)}, {}, "")});
    const auto report = sol::passes::run_pipeline(g);
    EXPECT_TRUE(g.nodes().empty()) << ir::to_text(g);
    EXPECT_EQ(g.outputs(), std::vector<int>{x});
    EXPECT_EQ(report.fused_nodes, 0);
}

}  // namespace
