// The generated convolution of images with few input channels into NHWC or
// NCHW16c/8c output (codegen/cpu/emit_few_input_channels_conv.cpp), chosen
// over oneDNN through the autotuning cache, against the direct convolution:
// 1 to 3 input channels, 7x7 stride 2 and 3x3 windows, dilation, padding, the
// output channels in whole registers and with an 8-lane tail, tiles of an
// output row with a remainder, a bias and ReLU in its chain, batch 2, below
// and above the parallel threshold; and the code generated for AVX2's 8-lane
// registers from an NHWC input, compiled and run directly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "compiled_model_helpers.h"
#include "generated_alternative.h"
#include "reference_ops.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;

constexpr float kTolerance = 1e-5f;  // relative to the largest output
constexpr ref::Index kBatch = 2;

struct Case {
    const char* name;
    const char* layout;  // SOL_LAYOUT
    ref::Index in_channels, out_channels, h, w, kernel, stride, padding, dilation;
};

std::ostream& operator<<(std::ostream& out, const Case& c) { return out << c.name; }

ref::Conv2dParams first_params(const Case& c) {
    return {.stride_h = c.stride, .stride_w = c.stride, .pad_h = c.padding, .pad_w = c.padding,
            .dil_h = c.dilation, .dil_w = c.dilation};
}

// x -> conv with bias (the layer under test) -> ReLU -> 3x3 conv (oneDNN, channel-blocked in, so
// the first conv's output is channel-blocked too).
ir::Graph first_layer_graph(const Case& c) {
    ir::Graph g;
    const int x = g.add_input("x", {kBatch, c.in_channels, c.h, c.w}, DType::Float32);
    const int y = g.add_node(
        Op::Conv2d,
        {x, g.add_parameter("w1", {c.out_channels, c.in_channels, c.kernel, c.kernel}, DType::Float32),
         g.add_parameter("b1", {c.out_channels}, DType::Float32)},
        attrs({{"stride", Ints{c.stride, c.stride}},
               {"padding", Ints{c.padding, c.padding}},
               {"dilation", Ints{c.dilation, c.dilation}}}),
        "first");
    const int z = g.add_node(Op::Relu, {y}, {}, "activation");
    g.set_outputs({g.add_node(Op::Conv2d, {z, g.add_parameter("w2", {4, c.out_channels, 3, 3}, DType::Float32)},
                              attrs({{"padding", Ints{1, 1}}}), "last")});
    return g;
}

std::vector<float> expected_output(const Case& c, Tensors& in, Tensors& ps) {
    ref::Index oh = 0, ow = 0, oh2 = 0, ow2 = 0;
    const auto y = ref::relu(ref::conv2d(in["x"], kBatch, c.in_channels, c.h, c.w, ps["w1"], c.out_channels, c.kernel,
                                         c.kernel, ps["b1"], first_params(c), oh, ow));
    return ref::conv2d(y, kBatch, c.out_channels, oh, ow, ps["w2"], 4, 3, 3, {}, {.pad_h = 1, .pad_w = 1}, oh2, ow2);
}

class FewInputChannelsConvTest : public FreshCache, public ::testing::WithParamInterface<Case> {};

#ifdef SOL_HAVE_DNNL
TEST_P(FewInputChannelsConvTest, GeneratedKernelMatchesTheReference) {
    const Case& c = GetParam();
    ScopedEnv layout("SOL_LAYOUT", std::string(c.layout));
    ScopedEnv profiling("SOL_PROFILE", "1");  // the profile names the backend of each step
    auto model = compile_preferring_generated([&] { return first_layer_graph(c); });

    Tensors in{{"x", random_floats(kBatch * c.in_channels * c.h * c.w, 200)}};
    Tensors ps{{"w1", random_floats(c.out_channels * c.in_channels * c.kernel * c.kernel, 201)},
               {"b1", random_floats(c.out_channels, 202)},
               {"w2", random_floats(4 * c.out_channels * 9, 203)}};
    const auto result = run_model(*model, in, ps, true);
    const auto expected = expected_output(c, in, ps);
    EXPECT_LE(max_abs_difference(result[0], expected), kTolerance * largest_magnitude(expected));

    expect_generated_step(*model, "first", "activation");
    EXPECT_NE(module_source(*model).find("input channel(s): tiles of"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FewInputChannelsConvTest,
    ::testing::Values(
        // ResNet's first layer, smaller: 13 output columns in tiles of 5 (AVX-512) leave 3 over.
        Case{"Rgb7x7Stride2To64", "channels_last", 3, 64, 25, 25, 7, 2, 3, 1},
        // 24 = one register of 16 and one of 8; 14 columns in a tile of 10 and 4 over.
        Case{"Rgb3x3To24", "channels_last", 3, 24, 9, 14, 3, 1, 1, 1},
        Case{"Gray3x3Dilated2To16", "channels_last", 1, 16, 11, 10, 3, 1, 2, 2},
        // NCHW16c (AVX2: 8c) output; above the parallel threshold.
        Case{"Rgb7x7Stride2To64Blocked", "blocked", 3, 64, 64, 64, 7, 2, 3, 1},
        Case{"Two3x3Stride2To32Blocked", "blocked", 2, 32, 15, 17, 3, 2, 1, 1}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });
#endif

// The kernel as generated for 8-lane registers (AVX2: 3 registers of output
// channels, tiles of 3 pixels, 10 columns leaving 1 over), reading an NHWC
// input, compiled for this host and called on NHWC buffers, with bias and ReLU.
TEST(FewInputChannelsConv, EightLaneRegistersFromNhwcMatchTheReference) {
    constexpr ref::Index IC = 3, OC = 24, H = 9, W = 19, K = 5;
    const ref::Conv2dParams params{.stride_h = 2, .stride_w = 2, .pad_h = 2, .pad_w = 2};
    const auto [g, x, w, b, conv, y] =
        nhwc_conv_relu_graph(kBatch, IC, H, W, OC, K, attrs({{"stride", Ints{2, 2}}, {"padding", Ints{2, 2}}}));
    sol::codegen::cpu::CpuTarget avx2;
    avx2.vector_width = 8;
    const auto module = module_with_library_convolutions(g, avx2);
    ASSERT_EQ(module.calls.size(), 3u);
    ASSERT_FALSE(module.calls[1].alternative.empty()) << "a generated alternative to the library";
    EXPECT_NE(module.source.find("tiles of 3 pixels"), std::string::npos);

    const auto input = random_floats(kBatch * IC * H * W, 210);
    auto weights = random_floats(OC * IC * K * K, 211);
    auto bias = random_floats(OC, 212);
    auto nhwc_input = to_blocked(input, kBatch, IC, H, W, IC);
    ref::Index oh = 0, ow = 0;
    const auto expected = ref::relu(ref::conv2d(input, kBatch, IC, H, W, weights, OC, K, K, bias, params, oh, ow));
    std::vector<float> output(kBatch * OC * oh * ow, NAN);
    run_alternative(module, 1, {{x, nhwc_input.data()}, {w, weights.data()}, {b, bias.data()}, {y, output.data()}});
    EXPECT_LE(max_abs_difference(from_blocked(output, kBatch, OC, oh, ow, OC), expected), 1e-4f);
}

}  // namespace
