// The CPU backends side by side: the same convolution chains through oneDNN
// (the default where it applies) and through generated code only
// (SOL_BACKENDS=dfp), both against a direct 7-loop reference. Covers post-ops
// with the running value as either operand (x + conv(x), x - conv(x)), a
// per-channel multiply, a lowered hardsigmoid, and weights that must be
// re-prepared after they change.
#include <gtest/gtest.h>

#include "compiled_model_helpers.h"
#include "reference_ops.h"
#ifdef SOL_HAVE_DNNL
#include "sol/backends/dnnl/dnnl_convolution.h"
#endif

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;

class BackendConvolutionTest : public FreshCache, public ::testing::WithParamInterface<const char*> {};

// y1 = relu(x + conv1(x)); y2 = hardsigmoid(g * (x - conv2(x)))
ir::Graph residual_graph() {
    ir::Graph g;
    const int x = g.add_input("x", {2, 8, 9, 11}, DType::Float32);
    const int c1 = g.add_node(Op::Conv2d, {x, g.add_parameter("w1", {8, 8, 3, 3}, DType::Float32),
                                           g.add_parameter("b1", {8}, DType::Float32)},
                              attrs({{"padding", Ints{1, 2}}, {"dilation", Ints{1, 2}}}), "conv1");
    const int y1 = g.add_node(Op::Relu, {g.add_node(Op::Add, {x, c1}, {}, "")}, {}, "");
    const int c2 = g.add_node(Op::Conv2d, {x, g.add_parameter("w2", {8, 8, 1, 1}, DType::Float32)}, {}, "conv2");
    const int scaled = g.add_node(Op::Mul, {g.add_node(Op::Sub, {x, c2}, {}, ""),
                                            g.add_parameter("g", {1, 8, 1, 1}, DType::Float32)}, {}, "");
    g.set_outputs({y1, g.add_node(Op::Hardsigmoid, {scaled}, {}, "")});
    return g;
}

std::vector<float> expected(const Tensors& in, const Tensors& p, std::vector<float>& second) {
    const auto& x = in.at("x");
    ref::Index oh = 0, ow = 0;
    ref::Conv2dParams dilated;
    dilated.pad_h = 1, dilated.pad_w = 2, dilated.dil_w = 2;
    const auto c1 = ref::conv2d(x, 2, 8, 9, 11, p.at("w1"), 8, 3, 3, p.at("b1"), dilated, oh, ow);
    const auto c2 = ref::conv2d(x, 2, 8, 9, 11, p.at("w2"), 8, 1, 1, {}, ref::Conv2dParams{}, oh, ow);
    std::vector<float> first(x.size());
    second.resize(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        first[i] = std::max(x[i] + c1[i], 0.0f);
        const float v = (x[i] - c2[i]) * p.at("g")[(i / 99) % 8];
        second[i] = std::min(std::max(v / 6.0f + 0.5f, 0.0f), 1.0f);
    }
    return first;
}

TEST_P(BackendConvolutionTest, ResidualChainsMatchTheReference) {
    ScopedEnv backends("SOL_BACKENDS", std::string(GetParam()));
    ir::Graph g = residual_graph();
    auto model = compile_for_host(g);
#ifdef SOL_HAVE_DNNL
    const std::size_t expected_library_calls = std::string(GetParam()) == "dfp" ? 0 : 2;
#else
    const std::size_t expected_library_calls = 0;
#endif
    EXPECT_EQ(model->library_calls(), expected_library_calls) << "backend choice for SOL_BACKENDS=" << GetParam();

    Tensors inputs{{"x", random_floats(2 * 8 * 9 * 11, 21, -2, 2)}};
    Tensors params{{"w1", random_floats(8 * 8 * 9, 22)}, {"b1", random_floats(8, 23)},
                   {"w2", random_floats(64, 24)}, {"g", random_floats(8, 25)}};
    std::vector<float> second;
    auto out = run_model(*model, inputs, params, true);
    EXPECT_LE(max_abs_difference(out[0], expected(inputs, params, second)), 1e-4f);
    EXPECT_LE(max_abs_difference(out[1], second), 1e-4f);

    // New weights: the library's reordered copy must follow.
    for (float& w : params["w1"]) w = -w;
    out = run_model(*model, inputs, params, true);
    EXPECT_LE(max_abs_difference(out[0], expected(inputs, params, second)), 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendConvolutionTest, ::testing::Values("dnn,dfp", "dfp"));

TEST_F(FreshCache, WeightsFromAnInputStayInGeneratedCode) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 5, 5}, DType::Float32);
    const int w = g.add_input("w", {4, 4, 3, 3}, DType::Float32);  // per-call weights
    g.set_outputs({g.add_node(Op::Conv2d, {x, w}, {}, "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->library_calls(), 0u) << "weights that change per call cannot be reordered once";
}

// BatchNorm folded into a oneDNN convolution: the folded weights are computed
// in the parameter stage only for the library to reorder them, so the model
// keeps just the folded bias between calls (not a second copy of the
// weights); generated code reads the folded weights on every call and keeps
// them. Both give BN(conv(x)) before and after the weights change.
TEST_P(BackendConvolutionTest, FoldedWeightsAreKeptOnlyWhenReadPerCall) {
    ScopedEnv backends("SOL_BACKENDS", std::string(GetParam()));
    ir::Graph g;
    const int x = g.add_input("x", {1, 16, 6, 6}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {16, 16, 3, 3}, DType::Float32)},
                                attrs({{"padding", Ints{1, 1}}}), "conv");
    std::vector<int> bn{conv};
    for (const char* name : {"mean", "var", "gamma", "beta"}) bn.push_back(g.add_parameter(name, {16}, DType::Float32));
    g.set_outputs({g.add_node(Op::BatchNorm, bn, attrs({{"eps", 1e-5}}), "bn")});
    auto model = compile_for_host(g);
    const std::size_t weight_bytes = 16 * 16 * 9 * sizeof(float), bias_bytes = 16 * sizeof(float);
#ifdef SOL_HAVE_DNNL
    const bool library = std::string(GetParam()) != "dfp";
#else
    const bool library = false;
#endif
    EXPECT_EQ(model->library_calls(), library ? 1u : 0u);
    if (library) {
        EXPECT_LT(model->derived_bytes(), weight_bytes) << "the folded weights are kept next to oneDNN's copy";
        EXPECT_GE(model->library_kept_bytes(), weight_bytes) << "oneDNN keeps them reordered instead";
    } else {
        EXPECT_GE(model->derived_bytes(), weight_bytes + bias_bytes);
        EXPECT_EQ(model->library_kept_bytes(), 0u);
    }

    Tensors inputs{{"x", random_floats(16 * 36, 31, -2, 2)}};
    Tensors params{{"w", random_floats(16 * 16 * 9, 32)}, {"mean", random_floats(16, 33)},
                   {"var", random_floats(16, 34, 0.5f, 2.0f)}, {"gamma", random_floats(16, 35)},
                   {"beta", random_floats(16, 36)}};
    for (int round = 0; round < 2; ++round) {
        if (round == 1) params.at("w") = random_floats(16 * 16 * 9, 37);  // new weights: the stage runs again
        ref::Index oh = 0, ow = 0;
        ref::Conv2dParams padded;
        padded.pad_h = 1, padded.pad_w = 1;
        const auto c = ref::conv2d(inputs.at("x"), 1, 16, 6, 6, params.at("w"), 16, 3, 3, {}, padded, oh, ow);
        std::vector<float> expected(c.size());
        for (std::size_t i = 0; i < c.size(); ++i) {
            const std::size_t k = (i / 36) % 16;
            expected[i] = (c[i] - params.at("mean")[k]) / std::sqrt(params.at("var")[k] + 1e-5f) *
                              params.at("gamma")[k] + params.at("beta")[k];
        }
        const auto out = run_model(*model, inputs, params, true);
        EXPECT_LE(max_abs_difference(out[0], expected), 1e-4f) << (round == 0 ? "first weights" : "new weights");
    }
}

#ifdef SOL_HAVE_DNNL
// oneDNN's Winograd kernels (AVX-512 only) are one more variant of a 3x3
// stride-1 convolution without groups or dilation, never the first: the
// autotuner may pick them, the heuristic never does. No other shape gets it,
// nor any shape with SOL_WINOGRAD=off.
TEST(DnnlConvolution, WinogradIsAVariantOfThreeByThreeStrideOneOnly) {
    struct Shape {
        std::int64_t kernel, stride, groups, dilation;
        std::string text() const {
            return std::to_string(kernel) + "x" + std::to_string(kernel) + " stride " + std::to_string(stride) +
                   " groups " + std::to_string(groups) + " dilation " + std::to_string(dilation);
        }
    };
    // How many of the convolution's variants are Winograd; variant 0 never is.
    auto winograd_variants = [](const Shape& c) {
        ir::Graph g;
        const int x = g.add_input("x", {2, 32, 14, 14}, DType::Float32);
        const int w = g.add_parameter("w", {32, 32 / c.groups, c.kernel, c.kernel}, DType::Float32);
        const int y = g.add_node(Op::Conv2d, {x, w},
                                 attrs({{"padding", Ints{c.dilation * (c.kernel / 2), c.dilation * (c.kernel / 2)}},
                                        {"stride", Ints{c.stride, c.stride}},
                                        {"groups", c.groups},
                                        {"dilation", Ints{c.dilation, c.dilation}}}),
                                 "conv");
        g.set_outputs({y});
        auto conv = sol::backends::dnnl::make_convolution(g, {0}, {x, w, y});
        int winograd = 0;
        for (int v = 0; v < conv->variant_count(); ++v) winograd += conv->variant_name(v).find("wino") != std::string::npos;
        EXPECT_EQ(conv->variant_name(0).find("wino"), std::string::npos) << c.text() << ": the default is direct";
        return winograd;
    };
    const Shape winograd_shape{3, 1, 1, 1};
    EXPECT_EQ(winograd_variants(winograd_shape), has_avx512_core() ? 1 : 0);
    for (const Shape& other : {Shape{3, 2, 1, 1}, Shape{1, 1, 1, 1}, Shape{3, 1, 2, 1}, Shape{3, 1, 1, 2}})
        EXPECT_EQ(winograd_variants(other), 0) << other.text();
    ScopedEnv off("SOL_WINOGRAD", std::string("off"));
    EXPECT_EQ(winograd_variants(winograd_shape), 0) << "SOL_WINOGRAD=off";
}
#endif

}  // namespace
