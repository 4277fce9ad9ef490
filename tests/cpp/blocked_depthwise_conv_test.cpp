// The generated depthwise convolution on channel-blocked images
// (codegen/cpu/emit_blocked_depthwise_conv.cpp), chosen over oneDNN through
// the autotuning cache, against the direct convolution: NHWC and NCHW16c,
// channel counts with an 8-lane tail, stride, dilation, padding, images
// narrower and wider than a register tile, a bias, a residual sum and ReLU
// in its chain, batch 2, below and above the parallel threshold; and the
// code generated for AVX2's 8-lane registers, compiled and run directly.
#include <gtest/gtest.h>

#include <cmath>

#include "compiled_model_helpers.h"
#include "generated_alternative.h"
#include "reference_ops.h"
#include "sol/passes/fuse_elementwise.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;

constexpr float kTolerance = 1e-4f;
constexpr ref::Index kBatch = 2, kInChannels = 8;

struct Case {
    const char* name;
    const char* layout;  // SOL_LAYOUT
    ref::Index channels, h, w, kernel, stride, padding, dilation;
    bool residual;  // act(dw(y) + y) instead of act(dw(y))
    Op activation = Op::Relu;  // sigmoid has no vector form: the chain then runs lane by lane
};

std::ostream& operator<<(std::ostream& out, const Case& c) { return out << c.name; }

// x -> 1x1 conv (oneDNN or generated; its output is blocked) -> depthwise
// conv with bias (+ y) -> relu or sigmoid -> 1x1 conv (oneDNN: its blocked output feeds
// the depthwise conv, not row-major memory).
ir::Graph depthwise_graph(const Case& c) {
    ir::Graph g;
    const int x = g.add_input("x", {kBatch, kInChannels, c.h, c.w}, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, g.add_parameter("w1", {c.channels, kInChannels, 1, 1}, DType::Float32)}, {},
                             "expand");
    int z = g.add_node(Op::Conv2d,
                       {y, g.add_parameter("wd", {c.channels, 1, c.kernel, c.kernel}, DType::Float32),
                        g.add_parameter("bd", {c.channels}, DType::Float32)},
                       attrs({{"stride", Ints{c.stride, c.stride}}, {"padding", Ints{c.padding, c.padding}},
                              {"dilation", Ints{c.dilation, c.dilation}}, {"groups", std::int64_t{c.channels}}}),
                       "depthwise");
    if (c.residual) z = g.add_node(Op::Add, {z, y}, {}, "residual");
    z = g.add_node(c.activation, {z}, {}, "activation");
    g.set_outputs({g.add_node(Op::Conv2d, {z, g.add_parameter("w2", {c.channels, c.channels, 1, 1}, DType::Float32)},
                              {}, "project")});
    return g;
}

std::vector<float> expected_output(const Case& c, Tensors& in, Tensors& ps) {
    ref::Index oh = 0, ow = 0;
    const auto y = ref::conv2d(in["x"], kBatch, kInChannels, c.h, c.w, ps["w1"], c.channels, 1, 1, {}, {}, oh, ow);
    auto z = ref::conv2d(y, kBatch, c.channels, c.h, c.w, ps["wd"], c.channels, c.kernel, c.kernel, ps["bd"],
                         {.stride_h = c.stride, .stride_w = c.stride, .pad_h = c.padding, .pad_w = c.padding,
                          .dil_h = c.dilation, .dil_w = c.dilation, .groups = c.channels},
                         oh, ow);
    if (c.residual)
        for (std::size_t i = 0; i < z.size(); ++i) z[i] += y[i];
    const std::vector<float> activated = c.activation == Op::Sigmoid ? ref::sigmoid(z) : ref::relu(z);
    ref::Index oh2 = 0, ow2 = 0;
    return ref::conv2d(activated, kBatch, c.channels, oh, ow, ps["w2"], c.channels, 1, 1, {}, {}, oh2, ow2);
}

class BlockedDepthwiseConvTest : public FreshCache, public ::testing::WithParamInterface<Case> {};

#ifdef SOL_HAVE_DNNL
TEST_P(BlockedDepthwiseConvTest, GeneratedKernelMatchesTheReference) {
    const Case& c = GetParam();
    ScopedEnv layout("SOL_LAYOUT", std::string(c.layout));
    ScopedEnv profiling("SOL_PROFILE", "1");  // the profile names the backend of each step
    auto model = compile_preferring_generated([&] { return depthwise_graph(c); });

    Tensors in{{"x", random_floats(kBatch * kInChannels * c.h * c.w, 160)}};
    Tensors ps{{"w1", random_floats(c.channels * kInChannels, 161)},
               {"wd", random_floats(c.channels * c.kernel * c.kernel, 162)},
               {"bd", random_floats(c.channels, 163)},
               {"w2", random_floats(c.channels * c.channels, 164)}};
    const auto result = run_model(*model, in, ps, true);
    EXPECT_LE(max_abs_difference(result[0], expected_output(c, in, ps)), kTolerance);

    expect_generated_step(*model, "depthwise", "activation");
    const std::string source = module_source(*model);
    EXPECT_NE(source.find("registers of neighbouring channels"), std::string::npos);
    // ReLU stores a register per pixel; sigmoid goes through the scalar chain lane by lane.
    EXPECT_EQ(stores_lane_by_lane(source), c.activation == Op::Sigmoid);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, BlockedDepthwiseConvTest,
    ::testing::Values(
        // 24 channels in NHWC: a register of 16, then one of 8 (on AVX2: three of 8).
        Case{"Nhwc24Channels3x3", "channels_last", 24, 9, 11, 3, 1, 1, 1, false},
        // Above the parallel threshold; 40 columns: interior tiles in a loop.
        Case{"Nhwc32Channels3x3Residual", "channels_last", 32, 20, 40, 3, 1, 1, 1, true},
        Case{"Nhwc48Channels5x5Stride2", "channels_last", 48, 13, 12, 5, 2, 2, 1, false},
        Case{"Nhwc16Channels3x3Dilated", "channels_last", 16, 10, 19, 3, 1, 2, 2, false},
        Case{"Nhwc24Channels3x3Sigmoid", "channels_last", 24, 9, 11, 3, 1, 1, 1, true, Op::Sigmoid},
        // Padding beyond the taps' reach: border columns with no tap inside on one side.
        Case{"Nhwc32Channels3x3WidePadding", "channels_last", 32, 6, 7, 3, 2, 3, 1, false},
        Case{"Blocked32Channels3x3Residual", "blocked", 32, 20, 40, 3, 1, 1, 1, true},
        Case{"Blocked48Channels5x5Stride2", "blocked", 48, 13, 12, 5, 2, 2, 1, false}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });
#endif

// The kernel as generated for 8-lane registers (AVX2: tiles of 4 columns),
// compiled for this host and called on hand-laid-out buffers: NHWC with 24
// channels (three registers per pixel) and NCHW8c with 16, bias and ReLU.
TEST(BlockedDepthwiseConv, EightLaneRegistersMatchTheReference) {
    struct Layout {
        int block;  // channel_block of the input and output
        ref::Index channels, h, w, kernel, stride, padding;
    };
    for (const Layout& c : {Layout{24, 24, 7, 13, 3, 1, 1}, Layout{8, 16, 9, 10, 5, 2, 2}}) {
        // Graph inputs and outputs are row-major: the blocked tensors lie between a negation and a pooling.
        ir::Graph g;
        const int x = g.add_node(Op::Neg, {g.add_input("in", {kBatch, c.channels, c.h, c.w}, DType::Float32)}, {}, "");
        const int w = g.add_parameter("w", {c.channels, 1, c.kernel, c.kernel}, DType::Float32);
        const int b = g.add_parameter("b", {c.channels}, DType::Float32);
        const int conv = g.add_node(
            Op::Conv2d, {x, w, b},
            attrs({{"stride", Ints{c.stride, c.stride}}, {"padding", Ints{c.padding, c.padding}},
                   {"groups", std::int64_t{c.channels}}}),
            "depthwise");
        const int y = g.add_node(Op::Relu, {conv}, {}, "relu");
        g.set_outputs({g.add_node(Op::AdaptiveAvgPool2d, {y}, attrs({{"output_size", Ints{1, 1}}}), "")});
        sol::passes::fuse_elementwise(g);
        for (int t : {x, conv, y}) g.set_channel_block(t, c.block);
        sol::codegen::cpu::CpuTarget avx2;
        avx2.vector_width = 8;
        const auto module = module_with_library_convolutions(g, avx2);
        ASSERT_EQ(module.calls.size(), 3u);
        ASSERT_FALSE(module.calls[1].alternative.empty()) << "a generated alternative to the library";
        EXPECT_NE(module.source.find("typedef sol_f32x8 vec;"), std::string::npos);
        if (c.w == 13)  // 11 interior columns: two tiles of 4 in the loop, 3 more, and the borders
            EXPECT_NE(module.source.find("ow += 4)"), std::string::npos) << "interior tiles of 4 columns";

        const ir::Shape out_shape = g.tensor(y).shape;
        const ref::Index oh = out_shape[2], ow = out_shape[3];
        const auto input = random_floats(kBatch * c.channels * c.h * c.w, 170);
        auto weights = random_floats(c.channels * c.kernel * c.kernel, 171);
        auto bias = random_floats(c.channels, 172);
        auto blocked_input = to_blocked(input, kBatch, c.channels, c.h, c.w, c.block);
        std::vector<float> output(kBatch * c.channels * oh * ow, NAN);
        run_alternative(module, 1, {{x, blocked_input.data()}, {w, weights.data()}, {b, bias.data()}, {y, output.data()}});

        ref::Index rh = 0, rw = 0;
        const auto expected = ref::relu(ref::conv2d(input, kBatch, c.channels, c.h, c.w, weights, c.channels, c.kernel,
                                                    c.kernel, bias,
                                                    {.stride_h = c.stride, .stride_w = c.stride, .pad_h = c.padding,
                                                     .pad_w = c.padding, .groups = c.channels},
                                                    rh, rw));
        EXPECT_LE(max_abs_difference(from_blocked(output, kBatch, c.channels, oh, ow, c.block), expected), kTolerance)
            << "block " << c.block;
    }
}

}  // namespace
