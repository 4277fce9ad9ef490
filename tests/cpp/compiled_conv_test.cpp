// conv2d kernels compiled and run against a direct 7-loop convolution:
// groups, stride, padding, dilation, the channel-blocked and the pointwise
// (1x1, stride 1) code paths, and epilogues that read every output axis.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiled_model_helpers.h"
#include "reference_ops.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;

constexpr float kTolerance = 1e-4f;

class CompiledConvTest : public FreshCache {};

TEST_F(CompiledConvTest, Conv2dWithGroupsStridePaddingDilation) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 4, 9, 11}, DType::Float32);
    const int w = g.add_parameter("w", {6, 2, 3, 3}, DType::Float32);
    const int b = g.add_parameter("b", {6}, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, w, b},
                             attrs({{"stride", Ints{2, 1}}, {"padding", Ints{1, 2}}, {"dilation", Ints{2, 1}},
                                    {"groups", std::int64_t{2}}}),
                             "grouped");
    const int dw = g.add_parameter("dw", {4, 1, 3, 3}, DType::Float32);
    const int z = g.add_node(Op::Conv2d, {x, dw},
                             attrs({{"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}, {"groups", std::int64_t{4}}}),
                             "depthwise");
    g.set_outputs({y, g.add_node(Op::Relu, {z}, {}, "")});
    auto model = compile_for_host(g);

    Tensors inputs{{"x", random_floats(2 * 4 * 9 * 11, 1)}};
    Tensors params{{"w", random_floats(6 * 2 * 9, 2)}, {"b", random_floats(6, 3)}, {"dw", random_floats(4 * 9, 4)}};
    const auto out = run_model(*model, inputs, params, true);

    ref::Index oh = 0, ow = 0;
    const auto expected_y = ref::conv2d(inputs["x"], 2, 4, 9, 11, params["w"], 6, 3, 3, params["b"],
                                        {.stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 2, .dil_h = 2, .groups = 2},
                                        oh, ow);
    EXPECT_EQ(model->outputs()[0].shape, (ir::Shape{2, 6, oh, ow}));
    EXPECT_LE(max_abs_difference(out[0], expected_y), kTolerance);
    const auto expected_z = ref::relu(ref::conv2d(inputs["x"], 2, 4, 9, 11, params["dw"], 4, 3, 3, {},
                                                  {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 4},
                                                  oh, ow));
    EXPECT_EQ(model->outputs()[1].shape, (ir::Shape{2, 4, oh, ow}));
    EXPECT_LE(max_abs_difference(out[1], expected_z), kTolerance);
}

// 1x1 kernels with stride beyond the kernel and padding beyond the input:
// output columns whose taps all fall into padding get the bias alone.
TEST_F(CompiledConvTest, Conv2dWithPaddingBeyondTheKernel) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 2, 5, 5}, DType::Float32);
    const int y = g.add_node(Op::Conv2d,
                             {x, g.add_parameter("w", {3, 2, 1, 1}, DType::Float32),
                              g.add_parameter("b", {3}, DType::Float32)},
                             attrs({{"stride", Ints{3, 3}}, {"padding", Ints{2, 2}}}), "");
    const int z = g.add_node(Op::Conv2d, {x, g.add_parameter("w2", {3, 2, 3, 3}, DType::Float32)},
                             attrs({{"stride", Ints{1, 2}}, {"padding", Ints{3, 3}}, {"dilation", Ints{3, 3}}}), "");
    g.set_outputs({y, z});
    auto model = compile_for_host(g);
    Tensors in{{"x", random_floats(50, 90)}};
    Tensors ps{{"w", random_floats(6, 91)}, {"b", random_floats(3, 92)}, {"w2", random_floats(54, 93)}};
    const auto out = run_model(*model, in, ps, true);
    ref::Index oh = 0, ow = 0;
    EXPECT_LE(max_abs_difference(out[0], ref::conv2d(in["x"], 1, 2, 5, 5, ps["w"], 3, 1, 1, ps["b"],
                                                     {.stride_h = 3, .stride_w = 3, .pad_h = 2, .pad_w = 2}, oh, ow)),
              kTolerance);
    EXPECT_EQ(model->outputs()[0].shape, (ir::Shape{1, 3, oh, ow}));
    EXPECT_LE(max_abs_difference(out[1], ref::conv2d(in["x"], 1, 2, 5, 5, ps["w2"], 3, 3, 3, {},
                                                     {.stride_h = 1, .stride_w = 2, .pad_h = 3, .pad_w = 3,
                                                      .dil_h = 3, .dil_w = 3},
                                                     oh, ow)),
              kTolerance);
}

// 1x1 stride-1 unpadded convs take the pointwise path (a plane is one row);
// the epilogue must still see the right (i2, i3) for broadcast operands.
TEST_F(CompiledConvTest, PointwiseConvWithEpilogueReadingEveryAxis) {
    constexpr ref::Index N = 2, C = 6, H = 5, W = 7, OC = 4;
    ir::Graph g;
    const int x = g.add_input("x", {N, C, H, W}, DType::Float32);
    const int skip = g.add_input("skip", {N, OC, H, W}, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {OC, C, 1, 1}, DType::Float32),
                                          g.add_parameter("b", {OC}, DType::Float32)}, {}, "");
    const int rows = g.add_node(Op::Add, {y, g.add_parameter("per_row", {OC, H, 1}, DType::Float32)}, {}, "");
    const int cols = g.add_node(Op::Mul, {rows, g.add_parameter("per_col", {W}, DType::Float32)}, {}, "");
    const int out = g.add_node(Op::Relu, {g.add_node(Op::Add, {cols, skip}, {}, "")}, {}, "");
    const int grouped = g.add_node(Op::Conv2d, {x, g.add_parameter("wg", {6, 3, 1, 1}, DType::Float32)},
                                   attrs({{"groups", std::int64_t{2}}}), "");
    g.set_outputs({out, grouped});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->kernel_calls(), 2u) << "conv + add + mul + add + relu is one kernel";

    Tensors in{{"x", random_floats(N * C * H * W, 110)}, {"skip", random_floats(N * OC * H * W, 111)}};
    Tensors ps{{"w", random_floats(OC * C, 112)}, {"b", random_floats(OC, 113)},
               {"per_row", random_floats(OC * H, 114)}, {"per_col", random_floats(W, 115)},
               {"wg", random_floats(18, 116)}};
    const auto result = run_model(*model, in, ps, true);
    ref::Index oh = 0, ow = 0;
    auto expected = ref::conv2d(in["x"], N, C, H, W, ps["w"], OC, 1, 1, ps["b"], {}, oh, ow);
    for (ref::Index n = 0; n < N; ++n)
        for (ref::Index c = 0; c < OC; ++c)
            for (ref::Index h = 0; h < H; ++h)
                for (ref::Index w = 0; w < W; ++w) {
                    const ref::Index i = ((n * OC + c) * H + h) * W + w;
                    const float v = (expected[i] + ps["per_row"][c * H + h]) * ps["per_col"][w] + in["skip"][i];
                    expected[i] = v < 0 ? 0 : v;
                }
    EXPECT_LE(max_abs_difference(result[0], expected), kTolerance);
    EXPECT_LE(max_abs_difference(result[1], ref::conv2d(in["x"], N, C, H, W, ps["wg"], 6, 1, 1, {},
                                                        {.groups = 2}, oh, ow)),
              kTolerance);
}

// The register-tiled pointwise kernel in generated code (oneDNN off): 19
// output channels leave a remainder after full tiles of MR channels (8 on
// AVX-512, 6 on AVX2), 99 pixels a remainder after full tiles of NR, and
// the batch of 2 checks the image offset; the residual and ReLU run in its
// epilogue. Kept below the parallel threshold (see OddChannelCountsAndLargePlanes).
TEST_F(CompiledConvTest, PointwiseConvRegisterTilesWithRemainders) {
    constexpr ref::Index N = 2, C = 8, H = 9, W = 11, OC = 19;
    ScopedEnv generated_only("SOL_BACKENDS", std::string("dfp"));
    ir::Graph g;
    const int x = g.add_input("x", {N, C, H, W}, DType::Float32);
    const int skip = g.add_input("skip", {N, OC, H, W}, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {OC, C, 1, 1}, DType::Float32),
                                          g.add_parameter("b", {OC}, DType::Float32)}, {}, "");
    g.set_outputs({g.add_node(Op::Relu, {g.add_node(Op::Add, {y, skip}, {}, "")}, {}, "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->kernel_calls(), 1u);
    EXPECT_EQ(model->library_calls(), 0u);
    std::ifstream source(std::filesystem::path(model->library_path()).replace_extension(".cpp"));
    std::stringstream text;
    text << source.rdbuf();
    EXPECT_NE(text.str().find("vectors in registers"), std::string::npos) << "the register-tiled kernel";

    Tensors in{{"x", random_floats(N * C * H * W, 130)}, {"skip", random_floats(N * OC * H * W, 131)}};
    Tensors ps{{"w", random_floats(OC * C, 132)}, {"b", random_floats(OC, 133)}};
    const auto result = run_model(*model, in, ps, true);
    ref::Index oh = 0, ow = 0;
    auto expected = ref::conv2d(in["x"], N, C, H, W, ps["w"], OC, 1, 1, ps["b"], {}, oh, ow);
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = std::max(expected[i] + in["skip"][i], 0.0f);
    EXPECT_LE(max_abs_difference(result[0], expected), kTolerance);
}

// The padded-plane depthwise kernel in generated code (oneDNN off): 3x3 with
// padding 1, 5x3 dilated with asymmetric padding, 3x3 with stride 2 (four
// phase planes; 9x11 leaves a last phase row and column short) and 5x5 with
// stride (2, 3) and dilation 2, batch 2, odd planes, a bias and a ReLU
// epilogue, against the direct convolution. Below the parallel threshold
// (see OddChannelCountsAndLargePlanes).
TEST_F(CompiledConvTest, DepthwisePaddedPhasePlanes) {
    constexpr ref::Index N = 2, C = 6, H = 9, W = 11;
    ScopedEnv generated_only("SOL_BACKENDS", std::string("dfp"));
    ir::Graph g;
    const int x = g.add_input("x", {N, C, H, W}, DType::Float32);
    const int a = g.add_node(Op::Conv2d, {x, g.add_parameter("wa", {C, 1, 3, 3}, DType::Float32),
                                          g.add_parameter("b", {C}, DType::Float32)},
                             attrs({{"padding", Ints{1, 1}}, {"groups", std::int64_t{C}}}), "");
    const int d = g.add_node(Op::Conv2d, {x, g.add_parameter("wd", {C, 1, 5, 3}, DType::Float32)},
                             attrs({{"padding", Ints{3, 1}}, {"dilation", Ints{2, 1}}, {"groups", std::int64_t{C}}}), "");
    const int s2 = g.add_node(Op::Conv2d, {x, g.add_parameter("ws", {C, 1, 3, 3}, DType::Float32)},
                              attrs({{"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}, {"groups", std::int64_t{C}}}), "");
    const int s23 = g.add_node(Op::Conv2d, {x, g.add_parameter("wt", {C, 1, 5, 5}, DType::Float32)},
                               attrs({{"stride", Ints{2, 3}}, {"padding", Ints{2, 3}}, {"dilation", Ints{2, 2}},
                                      {"groups", std::int64_t{C}}}), "");
    g.set_outputs({g.add_node(Op::Relu, {a}, {}, ""), d, s2, s23});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->kernel_calls(), 4u) << "conv + bias + relu is one kernel";
    std::ifstream source(std::filesystem::path(model->library_path()).replace_extension(".cpp"));
    std::stringstream text;
    text << source.rdbuf();
    std::size_t kernels = 0;
    for (std::size_t at = 0; (at = text.str().find("each plane zero-padded once", at)) != std::string::npos; ++at) ++kernels;
    EXPECT_EQ(kernels, 4u) << "the padded-plane kernel for every convolution";

    Tensors in{{"x", random_floats(N * C * H * W, 140)}};
    Tensors ps{{"wa", random_floats(C * 9, 141)}, {"b", random_floats(C, 142)}, {"wd", random_floats(C * 15, 143)},
               {"ws", random_floats(C * 9, 144)}, {"wt", random_floats(C * 25, 145)}};
    const auto result = run_model(*model, in, ps, true);
    ref::Index oh = 0, ow = 0;
    const auto expected_a = ref::relu(ref::conv2d(in["x"], N, C, H, W, ps["wa"], C, 3, 3, ps["b"],
                                                  {.pad_h = 1, .pad_w = 1, .groups = C}, oh, ow));
    EXPECT_LE(max_abs_difference(result[0], expected_a), kTolerance);
    const auto expected_d = ref::conv2d(in["x"], N, C, H, W, ps["wd"], C, 5, 3, {},
                                        {.pad_h = 3, .pad_w = 1, .dil_h = 2, .groups = C}, oh, ow);
    EXPECT_EQ(model->outputs()[1].shape, (ir::Shape{N, C, oh, ow}));
    EXPECT_LE(max_abs_difference(result[1], expected_d), kTolerance);
    const auto expected_s2 = ref::conv2d(in["x"], N, C, H, W, ps["ws"], C, 3, 3, {},
                                         {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = C}, oh, ow);
    EXPECT_EQ(model->outputs()[2].shape, (ir::Shape{N, C, oh, ow}));
    EXPECT_LE(max_abs_difference(result[2], expected_s2), kTolerance);
    const auto expected_s23 = ref::conv2d(in["x"], N, C, H, W, ps["wt"], C, 5, 5, {},
                                          {.stride_h = 2, .stride_w = 3, .pad_h = 2, .pad_w = 3, .dil_h = 2, .dil_w = 2,
                                           .groups = C}, oh, ow);
    EXPECT_EQ(model->outputs()[3].shape, (ir::Shape{N, C, oh, ow}));
    EXPECT_LE(max_abs_difference(result[3], expected_s23), kTolerance);
}

// Output channels that no block size divides, and a 1x1 conv whose plane is
// too large for the pointwise path (66 x 65 > 4096). Kept below the parallel
// threshold: see CompiledModelTest.DestroyingAModelAfterAParallelKernel.
TEST_F(CompiledConvTest, OddChannelCountsAndLargePlanes) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 1, 66, 65}, DType::Float32);
    const int small = g.add_input("small", {3, 3, 9, 11}, DType::Float32);
    const int a = g.add_node(Op::Conv2d, {x, g.add_parameter("w7", {7, 1, 1, 1}, DType::Float32)}, {}, "");
    const int b = g.add_node(Op::Conv2d, {small, g.add_parameter("w12", {12, 3, 3, 3}, DType::Float32)},
                             attrs({{"stride", Ints{2, 2}}}), "");
    const int c = g.add_node(Op::Conv2d, {small, g.add_parameter("w6", {6, 3, 1, 1}, DType::Float32)}, {}, "");
    g.set_outputs({a, b, c});
    auto model = compile_for_host(g);
    Tensors in{{"x", random_floats(66 * 65, 120)}, {"small", random_floats(3 * 3 * 9 * 11, 123)}};
    Tensors ps{{"w7", random_floats(7, 121)}, {"w12", random_floats(324, 122)}, {"w6", random_floats(18, 124)}};
    const auto result = run_model(*model, in, ps, true);
    ref::Index oh = 0, ow = 0;
    EXPECT_LE(max_abs_difference(result[0], ref::conv2d(in["x"], 1, 1, 66, 65, ps["w7"], 7, 1, 1, {}, {}, oh, ow)),
              kTolerance);
    EXPECT_LE(max_abs_difference(result[1], ref::conv2d(in["small"], 3, 3, 9, 11, ps["w12"], 12, 3, 3, {},
                                                        {.stride_h = 2, .stride_w = 2}, oh, ow)),
              kTolerance);
    EXPECT_LE(max_abs_difference(result[2], ref::conv2d(in["small"], 3, 3, 9, 11, ps["w6"], 6, 1, 1, {}, {}, oh, ow)),
              kTolerance);
}

}  // namespace
