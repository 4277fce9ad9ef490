// Generated kernels compiled by the real host compiler and run through
// runtime::CompiledModel, against naive references (max abs error <= 1e-4).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "compiled_model_helpers.h"
#include "reference_ops.h"
#include "sol/error.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;

constexpr float kTolerance = 1e-4f;

class CompiledModelTest : public FreshCache {};

TEST_F(CompiledModelTest, MaxAvgAndAdaptivePooling) {
    constexpr ref::Index N = 2, C = 3, H = 9, W = 7;
    ir::Graph g;
    const int x = g.add_input("x", {N, C, H, W}, DType::Float32);
    struct Pool {
        Op op;
        ref::PoolParams p;
    };
    const std::vector<Pool> pools = {
        {Op::MaxPool2d, {.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .ceil_mode = true}},
        {Op::MaxPool2d, {.kh = 2, .kw = 3, .sh = 1, .sw = 2, .dh = 2, .dw = 1}},
        {Op::AvgPool2d, {.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .ceil_mode = true}},
        {Op::AvgPool2d,
         {.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .ceil_mode = true, .count_include_pad = false}},
        {Op::AvgPool2d, {.kh = 3, .kw = 3, .sh = 3, .sw = 3, .ph = 1, .pw = 1, .ceil_mode = true}},  // overhang
        {Op::AvgPool2d, {.kh = 2, .kw = 2, .sh = 2, .sw = 2, .divisor_override = 3}},
    };
    std::vector<int> outputs;
    for (const Pool& pool : pools) {
        const ref::PoolParams& p = pool.p;
        ir::Attributes a = attrs({{"kernel", Ints{p.kh, p.kw}}, {"stride", Ints{p.sh, p.sw}},
                                  {"padding", Ints{p.ph, p.pw}}, {"ceil_mode", std::int64_t{p.ceil_mode}}});
        if (pool.op == Op::MaxPool2d) a.set("dilation", Ints{p.dh, p.dw});
        if (pool.op == Op::AvgPool2d) {
            a.set("count_include_pad", std::int64_t{p.count_include_pad});
            a.set("divisor_override", p.divisor_override);
        }
        outputs.push_back(g.add_node(pool.op, {x}, a, ""));
    }
    outputs.push_back(g.add_node(Op::AdaptiveAvgPool2d, {x}, attrs({{"output_size", Ints{4, 3}}}), ""));
    g.set_outputs(outputs);
    auto model = compile_for_host(g);

    Tensors inputs{{"x", random_floats(N * C * H * W, 5)}};
    Tensors params;
    const auto out = run_model(*model, inputs, params, true);
    for (std::size_t k = 0; k < pools.size(); ++k) {
        SCOPED_TRACE("pool " + std::to_string(k));
        ref::Index oh = 0, ow = 0;
        const auto expected = pools[k].op == Op::MaxPool2d ? ref::max_pool2d(inputs["x"], N * C, H, W, pools[k].p, oh, ow)
                                                           : ref::avg_pool2d(inputs["x"], N * C, H, W, pools[k].p, oh, ow);
        EXPECT_EQ(model->outputs()[k].shape, (ir::Shape{N, C, oh, ow}));
        EXPECT_LE(max_abs_difference(out[k], expected), kTolerance);
    }
    EXPECT_LE(max_abs_difference(out.back(), ref::adaptive_avg_pool2d(inputs["x"], N * C, H, W, 4, 3)), kTolerance);
}

TEST_F(CompiledModelTest, LinearSoftmaxAndMovement) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3, 10}, DType::Float32);
    const int y = g.add_node(Op::Linear, {x, g.add_parameter("w", {5, 10}, DType::Float32),
                                          g.add_parameter("b", {5}, DType::Float32)}, {}, "");
    const int s = g.add_node(Op::Softmax, {y}, attrs({{"axis", std::int64_t{-1}}}), "");
    const int l = g.add_node(Op::LogSoftmax, {x}, attrs({{"axis", std::int64_t{1}}}), "");
    const int c = g.add_node(Op::Concat, {x, g.add_node(Op::Neg, {x}, {}, "")}, attrs({{"axis", std::int64_t{1}}}), "");
    const int p = g.add_node(Op::Permute, {x}, attrs({{"dims", Ints{2, 0, 1}}}), "");
    const int v = g.add_node(Op::Linear, {g.add_node(Op::Reshape, {x}, attrs({{"shape", Ints{60}}}), ""),
                                          g.add_parameter("w1", {4, 60}, DType::Float32)}, {}, "");
    g.set_outputs({y, s, l, c, p, v});
    auto model = compile_for_host(g);

    Tensors inputs{{"x", random_floats(60, 6, -3, 3)}};
    Tensors params{{"w", random_floats(50, 7)}, {"b", random_floats(5, 8)}, {"w1", random_floats(240, 9)}};
    const auto out = run_model(*model, inputs, params, true);
    const auto& xs = inputs["x"];
    const auto expected_y = ref::linear(xs, 6, 10, params["w"], 5, params["b"]);
    EXPECT_LE(max_abs_difference(out[0], expected_y), kTolerance);
    EXPECT_LE(max_abs_difference(out[1], ref::softmax(expected_y, 6, 5, 1, false)), kTolerance);
    EXPECT_LE(max_abs_difference(out[2], ref::softmax(xs, 2, 3, 10, true)), kTolerance);
    std::vector<float> expected_c, expected_p(60);
    for (int n = 0; n < 2; ++n) {
        for (int i = 0; i < 30; ++i) expected_c.push_back(xs[n * 30 + i]);
        for (int i = 0; i < 30; ++i) expected_c.push_back(-xs[n * 30 + i]);
    }
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 3; ++b)
            for (int k = 0; k < 10; ++k) expected_p[(k * 2 + a) * 3 + b] = xs[(a * 3 + b) * 10 + k];
    EXPECT_EQ(out[3], expected_c);
    EXPECT_EQ(out[4], expected_p);
    EXPECT_LE(max_abs_difference(out[5], ref::linear(xs, 1, 60, params["w1"], 4, {})), kTolerance);
}

// Linear layers in generated code (oneDNN off), each against the reference: K = 64 (whole vectors
// on AVX-512, AVX2 and NEON) with 13 outputs (a remainder after groups of R = 4) and a ReLU
// epilogue; K = 37 (a scalar tail after the vectors) on a rank-3 input without bias; K = 3 (less
// than a vector: the one-dot-product-per-output loop).
TEST_F(CompiledModelTest, GeneratedLinearWithOutputAndReductionRemainders) {
    ScopedEnv generated_only("SOL_BACKENDS", std::string("dfp"));
    ir::Graph g;
    const int x = g.add_input("x", {3, 64}, DType::Float32);
    const int t = g.add_input("t", {2, 3, 37}, DType::Float32);
    const int s = g.add_input("s", {5, 3}, DType::Float32);
    const int a = g.add_node(Op::Linear, {x, g.add_parameter("wa", {13, 64}, DType::Float32),
                                          g.add_parameter("ba", {13}, DType::Float32)}, {}, "");
    const int b = g.add_node(Op::Linear, {t, g.add_parameter("wb", {6, 37}, DType::Float32)}, {}, "");
    const int c = g.add_node(Op::Linear, {s, g.add_parameter("wc", {9, 3}, DType::Float32),
                                          g.add_parameter("bc", {9}, DType::Float32)}, {}, "");
    g.set_outputs({g.add_node(Op::Relu, {a}, {}, ""), b, c});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->kernel_calls(), 3u) << "linear + relu is one kernel";
    EXPECT_EQ(model->library_calls(), 0u);

    Tensors in{{"x", random_floats(3 * 64, 150)}, {"t", random_floats(6 * 37, 151)}, {"s", random_floats(15, 152)}};
    Tensors ps{{"wa", random_floats(13 * 64, 153)}, {"ba", random_floats(13, 154)}, {"wb", random_floats(6 * 37, 155)},
               {"wc", random_floats(27, 156)}, {"bc", random_floats(9, 157)}};
    const auto out = run_model(*model, in, ps, true);
    EXPECT_LE(max_abs_difference(out[0], ref::relu(ref::linear(in["x"], 3, 64, ps["wa"], 13, ps["ba"]))), kTolerance);
    EXPECT_LE(max_abs_difference(out[1], ref::linear(in["t"], 6, 37, ps["wb"], 6, {})), kTolerance);
    EXPECT_LE(max_abs_difference(out[2], ref::linear(in["s"], 5, 3, ps["wc"], 9, ps["bc"])), kTolerance);
}

// A reshape whose input nothing else reads is no step: its output is the input's memory, also
// when the next kernel computes in place over it and when another reshape follows. One whose input
// is read again later stays a copy (a kernel computing in place over either would change the other).
TEST_F(CompiledModelTest, ReshapesAliasTheirInputWhereNothingElseReadsIt) {
    ir::Graph g;
    const int x = g.add_input("x", {4, 6}, DType::Float32);
    const int a = g.add_node(Op::Relu, {x}, {}, "");
    const int b = g.add_node(Op::Reshape, {a}, attrs({{"shape", Ints{2, 12}}}), "aliased");
    const int c = g.add_node(Op::Neg, {b}, {}, "");  // may compute in place over b (a's memory)
    const int c2 = g.add_node(Op::Reshape, {c}, attrs({{"shape", Ints{3, 8}}}), "aliased too");
    const int c3 = g.add_node(Op::Exp, {c2}, {}, "");
    const int d = g.add_node(Op::Exp, {x}, {}, "");
    const int e = g.add_node(Op::Reshape, {d}, attrs({{"shape", Ints{24}}}), "copied");
    const int f = g.add_node(Op::Neg, {e}, {}, "");
    const int h = g.add_node(Op::Permute, {d}, attrs({{"dims", Ints{1, 0}}}), "");
    g.set_outputs({c3, f, h});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->aliased_reshapes(), 2);

    Tensors in{{"x", random_floats(24, 160, -2, 2)}}, none;
    const auto out = run_model(*model, in, none, true);
    for (int i = 0; i < 24; ++i) {
        EXPECT_NEAR(out[0][i], std::exp(-std::max(in["x"][i], 0.0f)), 1e-6f) << i;
        EXPECT_NEAR(out[1][i], -std::exp(in["x"][i]), 1e-5f * std::exp(in["x"][i])) << i;
    }
    for (int r = 0; r < 6; ++r)
        for (int k = 0; k < 4; ++k) EXPECT_NEAR(out[2][r * 4 + k], std::exp(in["x"][k * 6 + r]), 1e-4f) << r << k;
}

TEST_F(CompiledModelTest, ResidualBlockAndLoweredBatchNorm) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 6, 6}, DType::Float32);
    const int a = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {4, 4, 3, 3}, DType::Float32)},
                             attrs({{"padding", Ints{1, 1}}}), "");
    const int sum = g.add_node(Op::Add, {a, x}, {}, "residual");
    const int out0 = g.add_node(Op::Relu, {sum}, {}, "");
    std::vector<int> bn{x};  // on the block input: nothing to fold into
    for (const char* name : {"m", "v", "g", "b"}) bn.push_back(g.add_parameter(name, {4}, DType::Float32));
    const int out1 = g.add_node(Op::BatchNorm, bn, attrs({{"eps", 1e-3}}), "");
    g.set_outputs({out0, out1});
    auto model = compile_for_host(g);

    Tensors inputs{{"x", random_floats(144, 10)}};
    Tensors params{{"w", random_floats(144, 11)}, {"m", random_floats(4, 12)}, {"v", random_floats(4, 13, 0.5f, 2.0f)},
                   {"g", random_floats(4, 14)}, {"b", random_floats(4, 15)}};
    const auto out = run_model(*model, inputs, params, true);
    ref::Index oh = 0, ow = 0;
    auto expected = ref::conv2d(inputs["x"], 1, 4, 6, 6, params["w"], 4, 3, 3, {}, {.pad_h = 1, .pad_w = 1}, oh, ow);
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += inputs["x"][i];
    EXPECT_LE(max_abs_difference(out[0], ref::relu(expected)), kTolerance);
    EXPECT_LE(max_abs_difference(out[1], ref::batch_norm(inputs["x"], 1, 4, 36, params["m"], params["v"], params["g"],
                                                         params["b"], 1e-3)),
              kTolerance);
}

// conv -> BatchNorm folded: the folded weights live between calls and follow
// the framework's tensors when the caller says they changed.
TEST_F(CompiledModelTest, ParametersChangedRecomputesFoldedBatchNorm) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 6, 6}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d,
                                {x, g.add_parameter("conv.weight", {4, 3, 3, 3}, DType::Float32),
                                 g.add_parameter("conv.bias", {4}, DType::Float32)},
                                attrs({{"padding", Ints{1, 1}}}), "");
    std::vector<int> bn{conv};
    for (const char* name : {"bn.mean", "bn.var", "bn.weight", "bn.bias"})
        bn.push_back(g.add_parameter(name, {4}, DType::Float32));
    g.set_outputs({g.add_node(Op::BatchNorm, bn, attrs({{"eps", 1e-5}}), "")});
    auto model = compile_for_host(g);
    ASSERT_EQ(model->parameters().size(), 6u);

    Tensors inputs{{"x", random_floats(108, 20)}};
    Tensors params{{"conv.weight", random_floats(108, 21)}, {"conv.bias", random_floats(4, 22)},
                   {"bn.mean", random_floats(4, 23)},       {"bn.var", random_floats(4, 24, 0.5f, 2.0f)},
                   {"bn.weight", random_floats(4, 25)},     {"bn.bias", random_floats(4, 26)}};
    auto expected = [&] {
        ref::Index oh = 0, ow = 0;
        const auto y = ref::conv2d(inputs["x"], 1, 3, 6, 6, params["conv.weight"], 4, 3, 3, params["conv.bias"],
                                   {.pad_h = 1, .pad_w = 1}, oh, ow);
        return ref::batch_norm(y, 1, 4, 36, params["bn.mean"], params["bn.var"], params["bn.weight"],
                               params["bn.bias"], 1e-5);
    };
    // The first call computes the folded weights even when not told to.
    EXPECT_LE(max_abs_difference(run_model(*model, inputs, params, false)[0], expected()), kTolerance);

    params["bn.weight"] = random_floats(4, 30, 1.0f, 3.0f);
    params["bn.var"] = random_floats(4, 31, 0.1f, 0.3f);
    params["bn.mean"] = random_floats(4, 32);
    params["conv.bias"] = random_floats(4, 33);
    const auto second = expected();
    EXPECT_LE(max_abs_difference(run_model(*model, inputs, params, true)[0], second), kTolerance);

    // Not told: the folded weights of the last update are reused.
    params["bn.weight"] = random_floats(4, 40, -3.0f, -1.0f);
    EXPECT_LE(max_abs_difference(run_model(*model, inputs, params, false)[0], second), kTolerance);
    EXPECT_LE(max_abs_difference(run_model(*model, inputs, params, true)[0], expected()), kTolerance);
}

TEST_F(CompiledModelTest, WrongPointerCountsThrow) {
    ir::Graph g;
    const int x = g.add_input("x", {8}, DType::Float32);
    g.set_outputs({g.add_node(Op::Add, {g.add_node(Op::Relu, {x}, {}, ""), g.add_parameter("p", {8}, DType::Float32)},
                              {}, "")});
    auto model = compile_for_host(g);
    std::vector<float> in(8, -1.0f), p(8, 2.0f), out(8, 0.0f);
    auto message = [&](std::vector<void*> i, std::vector<void*> ps, std::vector<void*> o) -> std::string {
        try {
            model->run(i, ps, o, true);
        } catch (const sol::Error& error) {
            return error.what();
        }
        return "(no error)";
    };
    EXPECT_EQ(message({in.data(), in.data()}, {p.data()}, {out.data()}), "expected 1 input pointers, got 2");
    EXPECT_EQ(message({in.data()}, {}, {out.data()}), "expected 1 parameter pointers, got 0");
    EXPECT_EQ(message({in.data()}, {p.data()}, {out.data(), out.data()}), "expected 1 output pointers, got 2");
    EXPECT_NE(message({nullptr}, {p.data()}, {out.data()}).find("null input pointer"), std::string::npos);
    EXPECT_EQ(out, std::vector<float>(8, 0.0f)) << "nothing written on error";
    model->run({in.data()}, {p.data()}, {out.data()}, false);
    EXPECT_EQ(out, std::vector<float>(8, 2.0f));
}

// Outputs that are not written by a per-call kernel: an input (x * 1 folds
// away), a parameter, a value computed from parameters only. NaN propagates
// through relu and max pooling as in PyTorch.
TEST_F(CompiledModelTest, OutputsThatAreInputsParametersOrDerived) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 2, 4, 4}, DType::Float32);
    const int p = g.add_parameter("p", {3}, DType::Float32);
    const int same = g.add_node(Op::Mul, {x, g.add_constant(1.0, DType::Float32)}, {}, "");
    const int twice = g.add_node(Op::Mul, {p, g.add_constant(2.0, DType::Float32)}, {}, "");
    const int act = g.add_node(Op::Relu, {x}, {}, "");
    const int pooled = g.add_node(Op::MaxPool2d, {x}, attrs({{"kernel", Ints{2, 2}}}), "");
    g.set_outputs({same, p, twice, act, pooled});
    auto model = compile_for_host(g);

    Tensors inputs{{"x", random_floats(32, 50)}};
    inputs["x"][5] = std::numeric_limits<float>::quiet_NaN();  // (c0, h1, w1): first pooling window
    Tensors params{{"p", {1.5f, -2.0f, 0.25f}}};
    const auto out = run_model(*model, inputs, params, true);
    ASSERT_EQ(out.size(), 5u);
    for (std::size_t i = 0; i < 32; ++i)
        if (i != 5) {
            EXPECT_EQ(out[0][i], inputs["x"][i]) << i;
        }
    EXPECT_TRUE(std::isnan(out[0][5]));
    EXPECT_EQ(out[1], params["p"]);
    EXPECT_EQ(out[2], (std::vector<float>{3.0f, -4.0f, 0.5f}));
    EXPECT_TRUE(std::isnan(out[3][5])) << "relu(NaN) is NaN";
    EXPECT_EQ(out[3][0], std::max(inputs["x"][0], 0.0f));
    EXPECT_TRUE(std::isnan(out[4][0])) << "max pooling over a NaN is NaN";
    ref::Index oh = 0, ow = 0;
    const auto expected = ref::max_pool2d(inputs["x"], 2, 4, 4, {.kh = 2, .kw = 2, .sh = 2, .sw = 2}, oh, ow);
    for (std::size_t i = 1; i < expected.size(); ++i) EXPECT_EQ(out[4][i], expected[i]) << i;
}

// An elementwise kernel that is the last reader of a computed operand of its
// shape writes its result over it (the relu_grad/BatchNorm chains of a
// backward graph): a = exp(x) is read by a sum and by b = a * y + 1, which
// takes a's buffer (b is read twice, so it is stored): the workspace holds
// one image, not two.
TEST_F(CompiledModelTest, ElementwiseKernelComputesInPlaceOverItsLastRead) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3, 8, 8}, DType::Float32), y = g.add_input("y", {2, 3, 8, 8}, DType::Float32);
    const int a = g.add_node(Op::Exp, {x}, {}, "");
    const int sum_of_a = g.add_node(Op::Sum, {a}, attrs({{"axes", Ints{0, 1, 2, 3}}}), "");  // runs first
    const int b = g.add_node(Op::Add, {g.add_node(Op::Mul, {a, y}, {}, ""), g.add_constant(1.0, DType::Float32)}, {}, "");
    g.set_outputs({sum_of_a, g.add_node(Op::Sum, {b}, attrs({{"axes", Ints{0, 1, 2, 3}}}), ""),
                   g.add_node(Op::MaxPool2d, {b}, attrs({{"kernel", Ints{2, 2}}}), "")});
    auto model = compile_for_host(g);
    ASSERT_EQ(model->kernel_calls(), 5u) << "exp, sum, mul + add, sum, max_pool2d";
    EXPECT_EQ(model->workspace_bytes(), 2u * 3 * 8 * 8 * sizeof(float)) << "b computed over a";
    Tensors inputs{{"x", random_floats(384, 70)}, {"y", random_floats(384, 71)}}, params;
    const auto out = run_model(*model, inputs, params, true);
    double sum_a = 0, sum_b = 0;
    std::vector<float> b_values(384);
    for (std::size_t i = 0; i < 384; ++i) {
        sum_a += std::exp(inputs["x"][i]);
        b_values[i] = std::exp(inputs["x"][i]) * inputs["y"][i] + 1.0f;
        sum_b += b_values[i];
    }
    EXPECT_NEAR(out[0][0], sum_a, 1e-3 * sum_a);
    EXPECT_NEAR(out[1][0], sum_b, 1e-3 * std::abs(sum_b));
    ref::Index oh = 0, ow = 0;
    const auto pooled = ref::max_pool2d(b_values, 6, 8, 8, {.kh = 2, .kw = 2, .sh = 2, .sw = 2}, oh, ow);
    EXPECT_LE(max_abs_difference(out[2], pooled), 1e-5f);
}

// Four threads run one model at once, each on its own input, from the very
// first call (the folded weights are computed once, under the lock).
TEST_F(CompiledModelTest, ConcurrentRunsFromFourThreads) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 16, 16}, DType::Float32);
    const int a = g.add_node(Op::Conv2d, {x, g.add_parameter("w1", {8, 4, 3, 3}, DType::Float32)},
                             attrs({{"padding", Ints{1, 1}}}), "");
    const int r = g.add_node(Op::Relu, {a}, {}, "");
    const int p = g.add_node(Op::MaxPool2d, {r}, attrs({{"kernel", Ints{2, 2}}}), "");
    const int b = g.add_node(Op::Conv2d, {p, g.add_parameter("w2", {4, 8, 3, 3}, DType::Float32)},
                             attrs({{"padding", Ints{1, 1}}}), "");
    std::vector<int> bn{b};
    for (const char* name : {"m", "v", "g", "b"}) bn.push_back(g.add_parameter(name, {4}, DType::Float32));
    g.set_outputs({g.add_node(Op::BatchNorm, bn, attrs({{"eps", 1e-5}}), "")});
    auto model = compile_for_host(g);
    EXPECT_GT(model->workspace_bytes(), 0u) << "intermediates live in a per-call workspace";

    Tensors params{{"w1", random_floats(288, 60)}, {"w2", random_floats(288, 61)}, {"m", random_floats(4, 62)},
                   {"v", random_floats(4, 63, 0.5f, 2.0f)}, {"g", random_floats(4, 64)}, {"b", random_floats(4, 65)}};
    auto reference = [&params](const std::vector<float>& input) {
        ref::Index oh = 0, ow = 0;
        const auto y = ref::relu(ref::conv2d(input, 1, 4, 16, 16, params["w1"], 8, 3, 3, {}, {.pad_h = 1, .pad_w = 1},
                                             oh, ow));
        const auto pooled = ref::max_pool2d(y, 8, 16, 16, {.kh = 2, .kw = 2, .sh = 2, .sw = 2}, oh, ow);
        const auto z = ref::conv2d(pooled, 1, 8, 8, 8, params["w2"], 4, 3, 3, {}, {.pad_h = 1, .pad_w = 1}, oh, ow);
        return ref::batch_norm(z, 1, 4, 64, params["m"], params["v"], params["g"], params["b"], 1e-5);
    };
    constexpr int kThreads = 4, kRuns = 25;
    std::vector<Tensors> inputs(kThreads);
    std::vector<std::vector<float>> expected(kThreads);
    for (int t = 0; t < kThreads; ++t) {
        inputs[t]["x"] = random_floats(1024, 100 + t);
        expected[t] = reference(inputs[t]["x"]);
    }
    std::vector<float> worst(kThreads, 0.0f);
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            Tensors own_params = params;  // same values, the thread's own pointers
            try {
                for (int run = 0; run < kRuns; ++run) {
                    std::vector<void*> in{inputs[t]["x"].data()}, ps, out;
                    for (const auto& info : model->parameters()) ps.push_back(own_params.at(info.name).data());
                    std::vector<float> result(expected[t].size(), std::numeric_limits<float>::quiet_NaN());
                    out.push_back(result.data());
                    model->run(in, ps, out, false);
                    worst[t] = std::max(worst[t], max_abs_difference(result, expected[t]));
                }
            } catch (const std::exception& error) {
                errors[t] = error.what();
            }
        });
    for (std::thread& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) {
        EXPECT_EQ(errors[t], "") << "thread " << t;
        EXPECT_LE(worst[t], kTolerance) << "thread " << t;
    }
}

// torch.clamp(int_tensor, min=0): the missing bound is unbounded, also for
// int64 (the literal must not come from casting infinity to an integer).
TEST_F(CompiledModelTest, Int64ClampWithOneBound) {
    ir::Graph g;
    const int x = g.add_input("x", {8}, DType::Int64);
    const int lower = g.add_node(Op::Clamp, {x}, attrs({{"min", 0.0}}), "");
    const int upper = g.add_node(Op::Clamp, {x}, attrs({{"max", 2.0}}), "");
    const int both = g.add_node(Op::Relu6, {x}, {}, "");
    g.set_outputs({lower, upper, both});
    auto model = compile_for_host(g);
    std::vector<std::int64_t> in{-5, -3, -1, 0, 1, 3, 5, 100};
    std::vector<std::vector<std::int64_t>> out(3, std::vector<std::int64_t>(8, 12345));
    model->run({in.data()}, {}, {out[0].data(), out[1].data(), out[2].data()}, true);
    EXPECT_EQ(out[0], (std::vector<std::int64_t>{0, 0, 0, 0, 1, 3, 5, 100})) << "clamp(min=0)";
    EXPECT_EQ(out[1], (std::vector<std::int64_t>{-5, -3, -1, 0, 1, 2, 2, 2})) << "clamp(max=2)";
    EXPECT_EQ(out[2], (std::vector<std::int64_t>{0, 0, 0, 0, 1, 3, 5, 6})) << "relu6";
}

// A graph may return a constant (verify accepts it; fold_identity can turn
// `0 + c` into one). The runtime must write it, not fail with an internal error.
TEST_F(CompiledModelTest, ConstantAsAGraphOutput) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int c = g.add_constant(2.5, DType::Float32);
    g.set_outputs({g.add_node(Op::Relu, {x}, {}, ""), c});
    auto model = compile_for_host(g);
    Tensors inputs{{"x", {1, -1, 2, -2}}}, params;
    try {
        const auto out = run_model(*model, inputs, params, true);
        EXPECT_EQ(out[0], (std::vector<float>{1, 0, 2, 0}));
        EXPECT_EQ(out[1], std::vector<float>{2.5f});
    } catch (const sol::Error& error) {
        ADD_FAILURE() << error.what();
    }
}

// A kernel large enough for `#pragma omp parallel` runs on the calling thread,
// which leaves OpenMP worker threads alive; then the model (and with it the
// kernel library that pulled in the OpenMP runtime) goes away while the
// program goes on. Returns the child's exit code: 0 when all went well.
int destroy_model_after_a_parallel_kernel() {
    ir::Graph g;
    const int x = g.add_input("x", {1, 16, 64, 64}, DType::Float32);
    g.set_outputs({g.add_node(Op::Exp, {x}, {}, "")});  // 65536 elements: above the threshold
    auto model = compile_for_host(g);
    std::vector<float> in(65536, 0.0f), out(65536, -1.0f);
    model->run({in.data()}, {}, {out.data()}, true);
    const bool right = out[0] == 1.0f && out[65535] == 1.0f;
    model.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return right ? 0 : 3;
}

// Run in a forked child (sharing this fixture's cache folder, which the
// parent removes): the program must not crash.
TEST_F(CompiledModelTest, DestroyingAModelAfterAParallelKernel) {
    GTEST_FLAG_SET(death_test_style, "fast");
    EXPECT_EXIT(std::exit(destroy_model_after_a_parallel_kernel()), ::testing::ExitedWithCode(0), "");
}

}  // namespace
