// Elementwise kernels compiled and run: every unary op of the table against
// its scalar definition, broadcasting on either side of a binary op, fused
// chains, and exact int64 arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "compiled_model_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

class CompiledElementwiseTest : public FreshCache {};

TEST_F(CompiledElementwiseTest, UnaryOpsMatchTheirDefinitions) {
    struct Unary {
        Op op;
        ir::Attributes attrs;
        std::function<double(double)> f;
        bool positive_only;
    };
    const double kSqrt2 = std::sqrt(2.0);
    const std::vector<Unary> unary = {
        {Op::Relu, {}, [](double x) { return x < 0 ? 0 : x; }, false},
        {Op::Relu6, {}, [](double x) { return std::min(std::max(x, 0.0), 6.0); }, false},
        {Op::Hardtanh, attrs({{"min", -0.5}, {"max", 2.0}}), [](double x) { return std::min(std::max(x, -0.5), 2.0); }, false},
        {Op::Clamp, attrs({{"min", -1.0}}), [](double x) { return std::max(x, -1.0); }, false},
        {Op::Sigmoid, {}, [](double x) { return 1 / (1 + std::exp(-x)); }, false},
        {Op::Tanh, {}, [](double x) { return std::tanh(x); }, false},
        {Op::Gelu, {}, [&](double x) { return 0.5 * x * (1 + std::erf(x / kSqrt2)); }, false},
        {Op::Gelu, attrs({{"approximate", std::int64_t{1}}}),
         [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }, false},
        {Op::Silu, {}, [](double x) { return x / (1 + std::exp(-x)); }, false},
        {Op::Hardswish, {}, [](double x) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; }, false},
        {Op::Hardsigmoid, {}, [](double x) { return std::min(std::max(x + 3, 0.0), 6.0) / 6; }, false},
        {Op::Neg, {}, [](double x) { return -x; }, false},
        {Op::Exp, {}, [](double x) { return std::exp(x); }, false},
        {Op::Identity, {}, [](double x) { return x; }, false},
        {Op::Log, {}, [](double x) { return std::log(x); }, true},
        {Op::Sqrt, {}, [](double x) { return std::sqrt(x); }, true},
        {Op::Rsqrt, {}, [](double x) { return 1 / std::sqrt(x); }, true},
    };
    ir::Graph g;
    const int x = g.add_input("x", {3, 37}, DType::Float32);
    const int positive = g.add_input("positive", {3, 37}, DType::Float32);
    std::vector<int> outputs;
    for (const Unary& u : unary) outputs.push_back(g.add_node(u.op, {u.positive_only ? positive : x}, u.attrs, ""));
    g.set_outputs(outputs);
    auto model = compile_for_host(g);

    Tensors inputs{{"x", random_floats(111, 70, -8, 8)}, {"positive", random_floats(111, 71, 0.01f, 5)}};
    Tensors params;
    const auto out = run_model(*model, inputs, params, true);
    for (std::size_t k = 0; k < unary.size(); ++k) {
        SCOPED_TRACE(std::string(ir::name(unary[k].op)) + " (output " + std::to_string(k) + ")");
        const auto& in = inputs[unary[k].positive_only ? "positive" : "x"];
        std::vector<float> expected;
        for (float v : in) expected.push_back(static_cast<float>(unary[k].f(v)));
        float worst = 0;  // relative for exp's large values
        for (std::size_t i = 0; i < in.size(); ++i)
            worst = std::max(worst, std::abs(out[k][i] - expected[i]) / std::max(1.0f, std::abs(expected[i])));
        EXPECT_LE(worst, 1e-5f);
        EXPECT_FALSE(std::isnan(worst));
    }
}

TEST_F(CompiledElementwiseTest, BroadcastingOnEitherSide) {
    ir::Graph g;
    const int a = g.add_input("a", {2, 3, 4}, DType::Float32);
    const int col = g.add_input("col", {3, 1}, DType::Float32);
    const int row = g.add_input("row", {4}, DType::Float32);
    const int s = g.add_input("s", {}, DType::Float32);
    const int sub = g.add_node(Op::Sub, {col, a}, {}, "");                        // small on the left
    const int div = g.add_node(Op::Div, {a, row}, {}, "");
    const int outer = g.add_node(Op::Mul, {col, row}, {}, "");                    // [3,1] x [4] -> [3,4]
    const int scalar = g.add_node(Op::Add, {s, g.add_constant(1.5, DType::Float32)}, {}, "");
    const int chain = g.add_node(Op::Mul, {g.add_node(Op::Add, {a, outer}, {}, ""), s}, {}, "");
    g.set_outputs({sub, div, outer, scalar, chain});
    auto model = compile_for_host(g);

    Tensors in{{"a", random_floats(24, 80)}, {"col", random_floats(3, 81)}, {"row", random_floats(4, 82, 0.5f, 2)},
               {"s", {-0.75f}}};
    Tensors params;
    const auto out = run_model(*model, in, params, true);
    std::vector<float> e_sub(24), e_div(24), e_outer(12), e_chain(24);
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k) {
                const int at = (i * 3 + j) * 4 + k;
                e_outer[j * 4 + k] = in["col"][j] * in["row"][k];
                e_sub[at] = in["col"][j] - in["a"][at];
                e_div[at] = in["a"][at] / in["row"][k];
                e_chain[at] = (in["a"][at] + e_outer[j * 4 + k]) * -0.75f;
            }
    EXPECT_LE(max_abs_difference(out[0], e_sub), 1e-6f);
    EXPECT_LE(max_abs_difference(out[1], e_div), 1e-6f);
    EXPECT_LE(max_abs_difference(out[2], e_outer), 1e-6f);
    EXPECT_EQ(out[3], std::vector<float>{0.75f});
    EXPECT_LE(max_abs_difference(out[4], e_chain), 1e-6f);
}

TEST_F(CompiledElementwiseTest, Int64ArithmeticIsExact) {
    ir::Graph g;
    const int a = g.add_input("a", {5}, DType::Int64);
    const int b = g.add_input("b", {5}, DType::Int64);
    const int sum = g.add_node(Op::Add, {a, b}, {}, "");
    const int product = g.add_node(Op::Mul, {a, g.add_constant(3, DType::Int64)}, {}, "");
    const int relu = g.add_node(Op::Relu, {g.add_node(Op::Sub, {a, b}, {}, "")}, {}, "");
    const int negated = g.add_node(Op::Neg, {b}, {}, "");
    g.set_outputs({sum, product, relu, negated});
    auto model = compile_for_host(g);
    std::vector<std::int64_t> av{1, -2, 3000000000, 0, 7}, bv{10, 20, -3000000000, 5, 7};
    std::vector<std::vector<std::int64_t>> out(4, std::vector<std::int64_t>(5, -99));
    model->run({av.data(), bv.data()}, {}, {out[0].data(), out[1].data(), out[2].data(), out[3].data()}, true);
    EXPECT_EQ(out[0], (std::vector<std::int64_t>{11, 18, 0, 5, 14}));
    EXPECT_EQ(out[1], (std::vector<std::int64_t>{3, -6, 9000000000, 0, 21}));
    EXPECT_EQ(out[2], (std::vector<std::int64_t>{0, 0, 6000000000, 0, 0}));
    EXPECT_EQ(out[3], (std::vector<std::int64_t>{-10, -20, 3000000000, -5, -7}));
}

}  // namespace
