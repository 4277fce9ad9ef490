// slice, mean and sum compiled by the host compiler, against loops written
// out in the test.
#include <gtest/gtest.h>

#include "compiled_model_helpers.h"
#include "sol/error.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

class CompiledSliceReductionTest : public FreshCache {};

TEST_F(CompiledSliceReductionTest, SliceWithStepAndReductionsOverSeveralAxes) {
    // x: [2, 5, 3, 4]
    ir::Graph g;
    const int x = g.add_input("x", {2, 5, 3, 4}, DType::Float32);
    const int sliced = g.add_node(Op::Slice, {x},
                                  attrs({{"axis", std::int64_t{-3}}, {"start", std::int64_t{1}},
                                         {"end", std::int64_t{5}}, {"step", std::int64_t{2}}}), "");
    const int mean_hw = g.add_node(Op::Mean, {x}, attrs({{"axes", Ints{-1, 2}}}), "");
    const int sum_keep = g.add_node(Op::Sum, {x}, attrs({{"axes", Ints{0, 2}}, {"keepdim", std::int64_t{1}}}), "");
    const int mean_all = g.add_node(Op::Mean, {x}, attrs({{"axes", Ints{0, 1, 2, 3}}}), "");
    g.set_outputs({sliced, mean_hw, sum_keep, mean_all});
    auto model = compile_for_host(g);
    ASSERT_EQ(model->outputs()[0].shape, (ir::Shape{2, 2, 3, 4}));
    ASSERT_EQ(model->outputs()[1].shape, (ir::Shape{2, 5}));
    ASSERT_EQ(model->outputs()[2].shape, (ir::Shape{1, 5, 1, 4}));
    ASSERT_EQ(model->outputs()[3].shape, (ir::Shape{}));

    Tensors inputs{{"x", random_floats(120, 11, -2, 2)}};
    Tensors params;
    const auto out = run_model(*model, inputs, params, true);
    const auto& xs = inputs["x"];
    auto at = [&xs](int n, int c, int h, int w) { return xs[((n * 5 + c) * 3 + h) * 4 + w]; };

    std::vector<float> expected_slice, expected_mean(10, 0.0f), expected_sum(20, 0.0f);
    for (int n = 0; n < 2; ++n)
        for (int c = 1; c < 5; c += 2)
            for (int h = 0; h < 3; ++h)
                for (int w = 0; w < 4; ++w) expected_slice.push_back(at(n, c, h, w));
    double total = 0.0;
    for (int n = 0; n < 2; ++n)
        for (int c = 0; c < 5; ++c)
            for (int h = 0; h < 3; ++h)
                for (int w = 0; w < 4; ++w) {
                    expected_mean[n * 5 + c] += at(n, c, h, w) / 12.0f;
                    expected_sum[c * 4 + w] += at(n, c, h, w);
                    total += at(n, c, h, w);
                }
    EXPECT_EQ(out[0], expected_slice);
    EXPECT_LE(max_abs_difference(out[1], expected_mean), 1e-5f);
    EXPECT_LE(max_abs_difference(out[2], expected_sum), 1e-5f);
    EXPECT_NEAR(out[3][0], total / 120.0, 1e-5);
}

// Runs of axes walked as one loop (trailing reduced axes; elementwise axes
// every operand spans or none does) whose last axes have extent 1: the loop
// variable must belong to an axis that takes part in the offsets.
TEST_F(CompiledSliceReductionTest, RunsEndingInAxesOfExtentOne) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3, 4, 1}, DType::Float32);
    const int scaled = g.add_node(Op::Mul, {x, g.add_constant(0.5, DType::Float32)}, {}, "");  // one run of 24
    const int per_channel = g.add_node(Op::Add, {x, g.add_input("c", {3, 1, 1}, DType::Float32)}, {}, "");
    const int sum_hw = g.add_node(Op::Sum, {x}, attrs({{"axes", Ints{2, 3}}}), "");  // a run of 4 x 1
    g.set_outputs({scaled, per_channel, sum_hw});
    auto model = compile_for_host(g);
    Tensors in{{"x", random_floats(24, 5)}, {"c", random_floats(3, 6)}};
    Tensors params;
    const auto out = run_model(*model, in, params, true);
    std::vector<float> half(24), shifted(24), sums(6, 0.0f);
    for (std::size_t i = 0; i < 24; ++i) {
        half[i] = in["x"][i] * 0.5f;
        shifted[i] = in["x"][i] + in["c"][(i / 4) % 3];
        sums[i / 4] += in["x"][i];
    }
    EXPECT_EQ(max_abs_difference(out[0], half), 0.0f);
    EXPECT_EQ(max_abs_difference(out[1], shifted), 0.0f);
    EXPECT_LE(max_abs_difference(out[2], sums), 1e-6f);
}

TEST_F(CompiledSliceReductionTest, SliceOutOfRangeIsAShapeError) {
    ir::Graph g;
    const int x = g.add_input("x", {4, 6}, DType::Float32);
    EXPECT_THROW(g.add_node(Op::Slice, {x}, attrs({{"axis", std::int64_t{1}}, {"start", std::int64_t{2}},
                                                   {"end", std::int64_t{7}}}), "cut (m.py:3)"),
                 sol::ShapeError);
    EXPECT_THROW(g.add_node(Op::Mean, {x}, attrs({{"axes", Ints{1, -1}}}), ""), sol::ShapeError)
        << "the same axis twice";
}

}  // namespace
