// The generated 1x1 convolution on NHWC images with few channels
// (codegen/cpu/emit_blocked_pointwise_conv.cpp), chosen over oneDNN through
// the autotuning cache, against the direct convolution: output channels in
// whole registers and with an 8-lane tail, tiles of pixels with a remainder,
// a bias, a residual sum, ReLU and sigmoid (lane by lane) in its chain,
// batch 2, below and above the parallel threshold; and the code generated
// for AVX2's 8-lane registers, compiled and run directly.
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
constexpr ref::Index kBatch = 2, kInChannels = 8;

struct Case {
    const char* name;
    ref::Index in_channels, out_channels, h, w;
    Op activation;
    bool residual;  // act(pw(y) + y): in_channels == out_channels
};

std::ostream& operator<<(std::ostream& out, const Case& c) { return out << c.name; }

// x -> 3x3 conv (oneDNN; NHWC out) -> 1x1 conv with bias (+ y) -> activation
// -> 3x3 conv (oneDNN: NHWC in, so the 1x1 conv's output is NHWC too).
ir::Graph pointwise_graph(const Case& c) {
    ir::Graph g;
    const int x = g.add_input("x", {kBatch, kInChannels, c.h, c.w}, DType::Float32);
    const auto padded = attrs({{"padding", Ints{1, 1}}});
    const int y = g.add_node(Op::Conv2d, {x, g.add_parameter("w1", {c.in_channels, kInChannels, 3, 3}, DType::Float32)},
                             padded, "first");
    int z = g.add_node(Op::Conv2d,
                       {y, g.add_parameter("wp", {c.out_channels, c.in_channels, 1, 1}, DType::Float32),
                        g.add_parameter("bp", {c.out_channels}, DType::Float32)},
                       {}, "pointwise");
    if (c.residual) z = g.add_node(Op::Add, {z, y}, {}, "residual");
    z = g.add_node(c.activation, {z}, {}, "activation");
    g.set_outputs({g.add_node(Op::Conv2d, {z, g.add_parameter("w2", {4, c.out_channels, 3, 3}, DType::Float32)},
                              padded, "last")});
    return g;
}

std::vector<float> expected_output(const Case& c, Tensors& in, Tensors& ps) {
    ref::Index oh = 0, ow = 0;
    const ref::Conv2dParams padded{.pad_h = 1, .pad_w = 1};
    const auto y = ref::conv2d(in["x"], kBatch, kInChannels, c.h, c.w, ps["w1"], c.in_channels, 3, 3, {}, padded, oh, ow);
    auto z = ref::conv2d(y, kBatch, c.in_channels, c.h, c.w, ps["wp"], c.out_channels, 1, 1, ps["bp"], {}, oh, ow);
    if (c.residual)
        for (std::size_t i = 0; i < z.size(); ++i) z[i] += y[i];
    const std::vector<float> activated = c.activation == Op::Sigmoid ? ref::sigmoid(z) : ref::relu(z);
    return ref::conv2d(activated, kBatch, c.out_channels, c.h, c.w, ps["w2"], 4, 3, 3, {}, padded, oh, ow);
}

class BlockedPointwiseConvTest : public FreshCache, public ::testing::WithParamInterface<Case> {};

#ifdef SOL_HAVE_DNNL
TEST_P(BlockedPointwiseConvTest, GeneratedKernelMatchesTheReference) {
    const Case& c = GetParam();
    ScopedEnv layout("SOL_LAYOUT", std::string("channels_last"));
    ScopedEnv profiling("SOL_PROFILE", "1");  // the profile names the backend of each step
    auto model = compile_preferring_generated([&] { return pointwise_graph(c); });

    Tensors in{{"x", random_floats(kBatch * kInChannels * c.h * c.w, 180)}};
    Tensors ps{{"w1", random_floats(c.in_channels * kInChannels * 9, 181)},
               {"wp", random_floats(c.out_channels * c.in_channels, 182)},
               {"bp", random_floats(c.out_channels, 183)},
               {"w2", random_floats(4 * c.out_channels * 9, 184)}};
    const auto result = run_model(*model, in, ps, true);
    // Three convolutions deep, outputs reach tens: the tolerance scales with them.
    const auto expected = expected_output(c, in, ps);
    EXPECT_LE(max_abs_difference(result[0], expected), kTolerance * largest_magnitude(expected));

    expect_generated_step(*model, "pointwise", "activation");
    const std::string source = module_source(*model);
    EXPECT_NE(source.find("pointwise on NHWC pixels"), std::string::npos);
    EXPECT_EQ(stores_lane_by_lane(source), c.activation == Op::Sigmoid);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, BlockedPointwiseConvTest,
    ::testing::Values(
        // One register of output channels: tiles of 12 pixels; 2 * 7 * 11 = 154 leaves 10 over.
        Case{"In32Out16Relu", 32, 16, 7, 11, Op::Relu, false},
        // 72 = four registers of 16 and one of 8 (AVX2: nine of 8).
        Case{"In16Out72Sigmoid", 16, 72, 5, 6, Op::Sigmoid, false},
        // Above the parallel threshold, with the input as the residual.
        Case{"In48Out48ReluResidual", 48, 48, 20, 30, Op::Relu, true},
        Case{"In24Out128Relu", 24, 128, 9, 13, Op::Relu, false}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });
#endif

// The kernel as generated for 8-lane registers (AVX2: 3 registers of output
// channels, tiles of 4 pixels, 70 pixels leaving 2 over), compiled for this
// host and called on NHWC buffers, with bias and ReLU.
TEST(BlockedPointwiseConv, EightLaneRegistersMatchTheReference) {
    constexpr ref::Index IC = 40, OC = 24, H = 5, W = 7;
    const auto [g, x, w, b, conv, y] = nhwc_conv_relu_graph(kBatch, IC, H, W, OC, 1, {});
    sol::codegen::cpu::CpuTarget avx2;
    avx2.vector_width = 8;
    const auto module = module_with_library_convolutions(g, avx2);
    ASSERT_EQ(module.calls.size(), 3u);
    ASSERT_FALSE(module.calls[1].alternative.empty()) << "a generated alternative to the library";
    EXPECT_NE(module.source.find("tiles of 4 pixels"), std::string::npos);

    const auto input = random_floats(kBatch * IC * H * W, 190);
    auto weights = random_floats(OC * IC, 191);
    auto bias = random_floats(OC, 192);
    auto blocked_input = to_blocked(input, kBatch, IC, H, W, IC);
    std::vector<float> output(kBatch * OC * H * W, NAN);
    run_alternative(module, 1, {{x, blocked_input.data()}, {w, weights.data()}, {b, bias.data()}, {y, output.data()}});
    ref::Index oh = 0, ow = 0;
    const auto expected = ref::relu(ref::conv2d(input, kBatch, IC, H, W, weights, OC, 1, 1, bias, {}, oh, ow));
    EXPECT_LE(max_abs_difference(from_blocked(output, kBatch, OC, H, W, OC), expected), 1e-4f);
}

}  // namespace
