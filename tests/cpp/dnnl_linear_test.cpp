// Linear layers on the CPU backends side by side: oneDNN's inner product (the
// default where it applies) and generated code only (SOL_BACKENDS=dfp), both
// against a direct double-accumulating reference. Covers bias + ReLU at
// batch 1 and 8 and on a rank-3 input (leading dims flattened into rows),
// a full-size residual (the `sum` post-op, also computed in place),
// broadcast side operands (binary post-ops), a per-row operand, weights
// that must be re-prepared after they change, and the cases left to
// generated code.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include "compiled_model_helpers.h"
#include "reference_ops.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;

// Both backends accumulate in float, the reference in double: a few ulps per
// term of the K-long dot product, far inside this bound.
constexpr float kRelativeTolerance = 1e-4f;

// The worst |a - b| relative to the reference's magnitude (at least 1, so
// values near zero are compared absolutely).
float max_relative_error(const std::vector<float>& actual, const std::vector<float>& expected) {
    if (actual.size() != expected.size()) return std::numeric_limits<float>::infinity();
    float worst = 0.0f;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const float error = std::abs(actual[i] - expected[i]) / std::max(1.0f, std::abs(expected[i]));
        if (!(error <= worst)) worst = error;  // NaN counts as the worst
    }
    return worst;
}

// The parameter: SOL_BACKENDS unset (oneDNN where it applies) or "dfp".
class BackendLinearTest : public FreshCache, public ::testing::WithParamInterface<const char*> {
protected:
    bool dfp_only() const { return std::string(GetParam()) == "dfp"; }
    std::optional<std::string> backends() const {
        return dfp_only() ? std::optional<std::string>("dfp") : std::nullopt;
    }
    // The library calls a model with `linears` oneDNN-eligible linear layers makes.
    std::size_t library_calls(std::size_t linears) const {
#ifdef SOL_HAVE_DNNL
        return dfp_only() ? 0 : linears;
#else
        (void)linears;
        return 0;
#endif
    }
};

std::vector<float> relu(std::vector<float> values) {
    for (float& v : values) v = std::max(v, 0.0f);
    return values;
}

// relu(x w^T + b) for x of `shape` ([..., K]), w [N, K].
void check_bias_relu(const ir::Shape& shape, std::int64_t N, std::size_t expected_calls, unsigned seed) {
    const std::int64_t K = shape.back(), rows = ir::element_count(shape) / K;
    ir::Graph g;
    const int x = g.add_input("x", shape, DType::Float32);
    const int y = g.add_node(Op::Linear, {x, g.add_parameter("w", {N, K}, DType::Float32),
                                          g.add_parameter("b", {N}, DType::Float32)}, {}, "fc");
    g.set_outputs({g.add_node(Op::Relu, {y}, {}, "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->library_calls(), expected_calls);

    Tensors inputs{{"x", random_floats(rows * K, seed, -2, 2)}};
    Tensors params{{"w", random_floats(N * K, seed + 1)}, {"b", random_floats(N, seed + 2)}};
    const auto out = run_model(*model, inputs, params, true);
    EXPECT_LE(max_relative_error(out[0], relu(ref::linear(inputs["x"], rows, K, params["w"], N, params["b"]))),
              kRelativeTolerance);
}

TEST_P(BackendLinearTest, BiasAndReluAtBatchOne) {
    ScopedEnv env("SOL_BACKENDS", backends());
    check_bias_relu({1, 70}, 33, library_calls(1), 31);
}

TEST_P(BackendLinearTest, BiasAndReluAtBatchEight) {
    ScopedEnv env("SOL_BACKENDS", backends());
    check_bias_relu({8, 70}, 33, library_calls(1), 41);
}

TEST_P(BackendLinearTest, RankThreeInputIsFlattenedIntoRows) {
    ScopedEnv env("SOL_BACKENDS", backends());
    check_bias_relu({2, 3, 70}, 33, library_calls(1), 51);
}

// y1 = relu(fc1(x) + z)              (z a graph input: copied into y1 first)
// y2 = softmax(fc2(x) + tanh(z))      (tanh(z) read only by fc2's call, so
//                                      fc2 computes in tanh(z)'s buffer)
TEST_P(BackendLinearTest, FullSizeResidualAdds) {
    ScopedEnv env("SOL_BACKENDS", backends());
    constexpr std::int64_t B = 8, K = 40, N = 24;
    ir::Graph g;
    const int x = g.add_input("x", {B, K}, DType::Float32);
    const int z = g.add_input("z", {B, N}, DType::Float32);
    const int fc1 = g.add_node(Op::Linear, {x, g.add_parameter("w1", {N, K}, DType::Float32),
                                            g.add_parameter("b1", {N}, DType::Float32)}, {}, "fc1");
    const int y1 = g.add_node(Op::Relu, {g.add_node(Op::Add, {fc1, z}, {}, "")}, {}, "");
    // fc2 first, so that fusion (in node order) gives the add to fc2's chain.
    const int fc2 = g.add_node(Op::Linear, {x, g.add_parameter("w2", {N, K}, DType::Float32)}, {}, "fc2");
    const int t = g.add_node(Op::Tanh, {z}, {}, "");
    const int sum = g.add_node(Op::Add, {t, fc2}, {}, "");
    g.set_outputs({y1, g.add_node(Op::Softmax, {sum}, attrs({{"axis", std::int64_t{-1}}}), "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->library_calls(), library_calls(2));
    // The workspace holds tanh(z) and fc2's result, one buffer when shared,
    // and beside it one library call's scratch at a time (both calls need the same).
    if (library_calls(2) == 2)
        EXPECT_EQ(model->workspace_bytes(), B * N * sizeof(float) + model->largest_library_scratch())
            << "not computed in place";

    Tensors inputs{{"x", random_floats(B * K, 61, -2, 2)}, {"z", random_floats(B * N, 62, -2, 2)}};
    Tensors params{{"w1", random_floats(N * K, 63)}, {"b1", random_floats(N, 64)}, {"w2", random_floats(N * K, 65)}};
    const auto out = run_model(*model, inputs, params, true);
    auto expected1 = ref::linear(inputs["x"], B, K, params["w1"], N, params["b1"]);
    auto expected2 = ref::linear(inputs["x"], B, K, params["w2"], N, {});
    for (std::int64_t i = 0; i < B * N; ++i) {
        expected1[i] = std::max(expected1[i] + inputs["z"][i], 0.0f);
        expected2[i] += std::tanh(inputs["z"][i]);
    }
    expected2 = ref::softmax(expected2, B, N, 1, false);
    EXPECT_LE(max_relative_error(out[0], expected1), kRelativeTolerance);
    EXPECT_LE(max_relative_error(out[1], expected2), kRelativeTolerance);
}

// sigmoid(fc(x) * g[N] - s[1]) on a rank-3 input: per-feature and scalar
// side operands broadcast over the flattened rows.
TEST_P(BackendLinearTest, BroadcastSideOperands) {
    ScopedEnv env("SOL_BACKENDS", backends());
    constexpr std::int64_t K = 20, N = 17, rows = 6;
    ir::Graph g;
    const int x = g.add_input("x", {2, 3, K}, DType::Float32);
    const int fc = g.add_node(Op::Linear, {x, g.add_parameter("w", {N, K}, DType::Float32),
                                           g.add_parameter("b", {N}, DType::Float32)}, {}, "fc");
    const int scaled = g.add_node(Op::Mul, {fc, g.add_parameter("g", {N}, DType::Float32)}, {}, "");
    const int shifted = g.add_node(Op::Sub, {scaled, g.add_parameter("s", {1}, DType::Float32)}, {}, "");
    g.set_outputs({g.add_node(Op::Sigmoid, {shifted}, {}, "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->library_calls(), library_calls(1));

    Tensors inputs{{"x", random_floats(rows * K, 71, -2, 2)}};
    Tensors params{{"w", random_floats(N * K, 72)}, {"b", random_floats(N, 73)}, {"g", random_floats(N, 74)},
                   {"s", random_floats(1, 75)}};
    const auto out = run_model(*model, inputs, params, true);
    auto expected = ref::linear(inputs["x"], rows, K, params["w"], N, params["b"]);
    for (std::int64_t i = 0; i < rows * N; ++i)
        expected[i] = 1.0f / (1.0f + std::exp(-(expected[i] * params["g"][i % N] - params["s"][0])));
    EXPECT_LE(max_relative_error(out[0], expected), kRelativeTolerance);
}

// fc(x) * r[rows, 1]: a per-row operand, which oneDNN 2.6 runs only by its
// reference kernel (then generated code runs it; the call count depends on
// oneDNN's version, so only the numbers are checked).
TEST_P(BackendLinearTest, PerRowSideOperand) {
    ScopedEnv env("SOL_BACKENDS", backends());
    constexpr std::int64_t K = 20, N = 17, rows = 6;
    for (const ir::Shape& shape : {ir::Shape{rows, K}, ir::Shape{2, 3, K}}) {
        SCOPED_TRACE("x " + ir::to_string(shape));
        ir::Graph g;
        const int x = g.add_input("x", shape, DType::Float32);
        const int fc = g.add_node(Op::Linear, {x, g.add_parameter("w", {N, K}, DType::Float32)}, {}, "fc");
        ir::Shape per_row = shape;
        per_row.back() = 1;
        g.set_outputs({g.add_node(Op::Mul, {fc, g.add_parameter("r", per_row, DType::Float32)}, {}, "")});
        auto model = compile_for_host(g);

        Tensors inputs{{"x", random_floats(rows * K, 76, -2, 2)}};
        Tensors params{{"w", random_floats(N * K, 77)}, {"r", random_floats(rows, 78)}};
        const auto out = run_model(*model, inputs, params, true);
        auto expected = ref::linear(inputs["x"], rows, K, params["w"], N, {});
        for (std::int64_t i = 0; i < rows * N; ++i) expected[i] *= params["r"][i / N];
        EXPECT_LE(max_relative_error(out[0], expected), kRelativeTolerance);
    }
}

TEST_P(BackendLinearTest, ChangedWeightsArePreparedAgain) {
    ScopedEnv env("SOL_BACKENDS", backends());
    constexpr std::int64_t B = 4, K = 50, N = 19;
    ir::Graph g;
    const int x = g.add_input("x", {B, K}, DType::Float32);
    const int y = g.add_node(Op::Linear, {x, g.add_parameter("w", {N, K}, DType::Float32),
                                          g.add_parameter("b", {N}, DType::Float32)}, {}, "fc");
    g.set_outputs({g.add_node(Op::Relu, {y}, {}, "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->library_calls(), library_calls(1));

    Tensors inputs{{"x", random_floats(B * K, 81, -2, 2)}};
    Tensors params{{"w", random_floats(N * K, 82)}, {"b", random_floats(N, 83)}};
    auto out = run_model(*model, inputs, params, true);
    EXPECT_LE(max_relative_error(out[0], relu(ref::linear(inputs["x"], B, K, params["w"], N, params["b"]))),
              kRelativeTolerance);

    // New weights: the library's reordered copy must follow.
    for (float& w : params["w"]) w = -w;
    out = run_model(*model, inputs, params, true);
    EXPECT_LE(max_relative_error(out[0], relu(ref::linear(inputs["x"], B, K, params["w"], N, params["b"]))),
              kRelativeTolerance);
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendLinearTest, ::testing::Values("default", "dfp"));

TEST_F(FreshCache, LinearOnAVectorStaysInGeneratedCode) {
    ScopedEnv env("SOL_BACKENDS", std::nullopt);
    ir::Graph g;
    const int x = g.add_input("x", {30}, DType::Float32);
    g.set_outputs({g.add_node(Op::Linear, {x, g.add_parameter("w", {5, 30}, DType::Float32)}, {}, "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->library_calls(), 0u) << "a rank-1 input is left to generated code";

    Tensors inputs{{"x", random_floats(30, 91)}};
    Tensors params{{"w", random_floats(150, 92)}};
    const auto out = run_model(*model, inputs, params, true);
    EXPECT_LE(max_relative_error(out[0], ref::linear(inputs["x"], 1, 30, params["w"], 5, {})), kRelativeTolerance);
}

TEST_F(FreshCache, LinearWeightsFromAnInputStayInGeneratedCode) {
    ScopedEnv env("SOL_BACKENDS", std::nullopt);
    ir::Graph g;
    const int x = g.add_input("x", {4, 8}, DType::Float32);
    const int w = g.add_input("w", {6, 8}, DType::Float32);  // per-call weights
    g.set_outputs({g.add_node(Op::Linear, {x, w}, {}, "")});
    auto model = compile_for_host(g);
    EXPECT_EQ(model->library_calls(), 0u) << "weights that change per call cannot be reordered once";
}

}  // namespace
