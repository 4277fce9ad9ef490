// Shape and dtype inference: one valid example per op of the op table, the
// window formula against PyTorch's values, and the rules of each op family.
#include <gtest/gtest.h>

#include <map>

#include "sol/error.h"
#include "sol/ir/shape_inference.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using sol::ShapeError;
using ir::DType;
using ir::Op;
using ir::Shape;

struct Example {
    Shape shape;
    DType dtype;
};

// Builds one node of `op` on fresh inputs; returns its inferred type.
Example infer_example(Op op) {
    ir::Graph g;
    const int x4 = g.add_input("x4", {2, 4, 8, 8}, DType::Float32);
    const int x2 = g.add_input("x2", {3, 5}, DType::Float32);
    const int xi = g.add_input("xi", {3, 5}, DType::Int64);
    auto param = [&g](const std::string& name, Shape shape) { return g.add_parameter(name, shape, DType::Float32); };
    int out = -1;
    switch (op) {
        case Op::Conv2d: out = g.add_node(op, {x4, param("w", {6, 4, 3, 3}), param("b", {6})}, attrs({{"padding", Ints{1, 1}}}), ""); break;
        case Op::Linear: out = g.add_node(op, {x2, param("w", {7, 5})}, {}, ""); break;
        case Op::BatchNorm:
            out = g.add_node(op, {x4, param("m", {4}), param("v", {4}), param("g", {4}), param("b", {4})},
                             attrs({{"eps", 1e-5}}), "");
            break;
        case Op::Clamp: out = g.add_node(op, {xi}, attrs({{"min", 0.0}}), ""); break;
        case Op::Relu:
        case Op::Relu6:
        case Op::Hardtanh:
        case Op::Neg:
        case Op::Identity: out = g.add_node(op, {xi}, {}, ""); break;  // numeric ops keep int64
        case Op::Sigmoid:
        case Op::Tanh:
        case Op::Gelu:
        case Op::Silu:
        case Op::Hardswish:
        case Op::Hardsigmoid:
        case Op::Exp:
        case Op::Log:
        case Op::Sqrt:
        case Op::Rsqrt: out = g.add_node(op, {x2}, {}, ""); break;
        case Op::Add:
        case Op::Sub:
        case Op::Mul:
        case Op::ReluGrad:
        case Op::ClampGrad:
        case Op::GeluGrad:
        case Op::Div: out = g.add_node(op, {x2, g.add_input("row", {1, 5}, DType::Float32)}, {}, ""); break;
        case Op::MulAdd:  // [3, 5] * [1, 5] + [3, 1]
            out = g.add_node(op, {x2, g.add_input("row", {1, 5}, DType::Float32), g.add_input("column", {3, 1}, DType::Float32)},
                             {}, "");
            break;
        case Op::Dropout:
            out = g.add_node(op, {x2, g.add_input("seed", {}, DType::Int64)}, attrs({{"p", 0.25}}), "");
            break;
        case Op::Expand: out = g.add_node(op, {g.add_input("row", {1, 5}, DType::Float32)}, attrs({{"shape", Ints{4, 5}}}), ""); break;
        case Op::Conv2dBackwardData:  // the gradient of conv2d's example: dy [2, 6, 8, 8], w [6, 4, 3, 3], pad 1
            out = g.add_node(op, {g.add_input("dy", {2, 6, 8, 8}, DType::Float32), g.add_parameter("w", {6, 4, 3, 3}, DType::Float32)},
                             attrs({{"padding", Ints{1, 1}}, {"input_shape", Ints{2, 4, 8, 8}}}), "");
            break;
        case Op::Conv2dBackwardWeight:
            out = g.add_node(op, {g.add_input("dy", {2, 6, 8, 8}, DType::Float32), x4},
                             attrs({{"padding", Ints{1, 1}}, {"weight_shape", Ints{6, 4, 3, 3}}}), "");
            break;
        case Op::MaxPool2dBackward:
            out = g.add_node(op, {g.add_input("dy", {2, 4, 4, 4}, DType::Float32), x4}, attrs({{"kernel", Ints{2, 2}}}), "");
            break;
        case Op::AvgPool2dBackward:
            out = g.add_node(op, {g.add_input("dy", {2, 4, 4, 4}, DType::Float32)},
                             attrs({{"kernel", Ints{2, 2}}, {"input_shape", Ints{2, 4, 8, 8}}}), "");
            break;
        case Op::AdaptiveAvgPool2dBackward:
            out = g.add_node(op, {g.add_input("dy", {2, 4, 1, 3}, DType::Float32)},
                             attrs({{"output_size", Ints{1, 3}}, {"input_shape", Ints{2, 4, 8, 8}}}), "");
            break;
        case Op::MaxPool2d:
        case Op::AvgPool2d: out = g.add_node(op, {x4}, attrs({{"kernel", Ints{2, 2}}}), ""); break;
        case Op::AdaptiveAvgPool2d: out = g.add_node(op, {x4}, attrs({{"output_size", Ints{1, 3}}}), ""); break;
        case Op::Reshape: out = g.add_node(op, {x4}, attrs({{"shape", Ints{2, -1}}}), ""); break;
        case Op::Permute: out = g.add_node(op, {x2}, attrs({{"dims", Ints{1, 0}}}), ""); break;
        case Op::Concat: out = g.add_node(op, {x2, x2, x2}, attrs({{"axis", std::int64_t{0}}}), ""); break;
        case Op::Softmax:
        case Op::LogSoftmax: out = g.add_node(op, {x2}, attrs({{"axis", std::int64_t{-1}}}), ""); break;
        case Op::Slice:
            out = g.add_node(op, {x4}, attrs({{"axis", std::int64_t{1}}, {"start", std::int64_t{1}},
                                              {"end", std::int64_t{4}}, {"step", std::int64_t{2}}}), "");
            break;
        case Op::Mean: out = g.add_node(op, {x4}, attrs({{"axes", Ints{2, 3}}}), ""); break;
        case Op::Sum: out = g.add_node(op, {xi}, attrs({{"axes", Ints{0}}, {"keepdim", std::int64_t{1}}}), ""); break;
        case Op::Custom:  // (x, parameter): the result shape the frontend inferred
            out = g.add_node(op, {x2, g.add_parameter("p", {7}, DType::Float32)},
                             attrs({{"input_count", std::int64_t{1}}, {"shape", Ints{5, 3}}}), "");
            break;
        case Op::CustomBackward:  // (dy, x, parameter): both gradients, flat
            out = g.add_node(op, {g.add_input("dy", {5, 3}, DType::Float32), x2, g.add_parameter("p", {7}, DType::Float32)},
                             attrs({{"input_count", std::int64_t{1}}, {"shape", Ints{5, 3}}}), "");
            break;
    }
    return {g.tensor(out).shape, g.tensor(out).dtype};
}

TEST(ShapeInference, EveryOpOfTheTableHasAValidExample) {
    const std::map<Op, Example> expected = {
        {Op::Conv2d, {{2, 6, 8, 8}, DType::Float32}},       {Op::Linear, {{3, 7}, DType::Float32}},
        {Op::BatchNorm, {{2, 4, 8, 8}, DType::Float32}},    {Op::Relu, {{3, 5}, DType::Int64}},
        {Op::Relu6, {{3, 5}, DType::Int64}},                {Op::Hardtanh, {{3, 5}, DType::Int64}},
        {Op::Clamp, {{3, 5}, DType::Int64}},                {Op::Sigmoid, {{3, 5}, DType::Float32}},
        {Op::Tanh, {{3, 5}, DType::Float32}},               {Op::Gelu, {{3, 5}, DType::Float32}},
        {Op::Silu, {{3, 5}, DType::Float32}},               {Op::Hardswish, {{3, 5}, DType::Float32}},
        {Op::Hardsigmoid, {{3, 5}, DType::Float32}},        {Op::Neg, {{3, 5}, DType::Int64}},
        {Op::Exp, {{3, 5}, DType::Float32}},                {Op::Log, {{3, 5}, DType::Float32}},
        {Op::Sqrt, {{3, 5}, DType::Float32}},               {Op::Rsqrt, {{3, 5}, DType::Float32}},
        {Op::Identity, {{3, 5}, DType::Int64}},             {Op::Add, {{3, 5}, DType::Float32}},
        {Op::Sub, {{3, 5}, DType::Float32}},                {Op::Mul, {{3, 5}, DType::Float32}},
        {Op::Div, {{3, 5}, DType::Float32}},                {Op::MulAdd, {{3, 5}, DType::Float32}},
        {Op::MaxPool2d, {{2, 4, 4, 4}, DType::Float32}},
        {Op::AvgPool2d, {{2, 4, 4, 4}, DType::Float32}},    {Op::AdaptiveAvgPool2d, {{2, 4, 1, 3}, DType::Float32}},
        {Op::Reshape, {{2, 256}, DType::Float32}},          {Op::Permute, {{5, 3}, DType::Float32}},
        {Op::Concat, {{9, 5}, DType::Float32}},             {Op::Softmax, {{3, 5}, DType::Float32}},
        {Op::LogSoftmax, {{3, 5}, DType::Float32}},         {Op::Slice, {{2, 2, 8, 8}, DType::Float32}},
        {Op::Mean, {{2, 4}, DType::Float32}},               {Op::Sum, {{1, 5}, DType::Int64}},
        {Op::ReluGrad, {{3, 5}, DType::Float32}},           {Op::Expand, {{4, 5}, DType::Float32}},
        {Op::ClampGrad, {{3, 5}, DType::Float32}},           {Op::Dropout, {{3, 5}, DType::Float32}},
        {Op::GeluGrad, {{3, 5}, DType::Float32}},
        {Op::Conv2dBackwardData, {{2, 4, 8, 8}, DType::Float32}},
        {Op::Conv2dBackwardWeight, {{6, 4, 3, 3}, DType::Float32}},
        {Op::MaxPool2dBackward, {{2, 4, 8, 8}, DType::Float32}},
        {Op::AvgPool2dBackward, {{2, 4, 8, 8}, DType::Float32}},
        {Op::AdaptiveAvgPool2dBackward, {{2, 4, 8, 8}, DType::Float32}},
        {Op::Custom, {{5, 3}, DType::Float32}},
        {Op::CustomBackward, {{22}, DType::Float32}},
    };
    ASSERT_EQ(expected.size(), ir::kOpCount) << "a new op needs an example here";
    for (const ir::OpInfo& row : ir::kOpTable) {
        SCOPED_TRACE(std::string(row.name));
        EXPECT_EQ(ir::parse_op(row.name), row.op);  // names round-trip
        const Example got = infer_example(row.op);
        EXPECT_EQ(got.shape, expected.at(row.op).shape);
        EXPECT_EQ(got.dtype, expected.at(row.op).dtype);
    }
}

TEST(ShapeInference, WindowOutputSizeMatchesPyTorchFormula) {
    // (input, kernel, stride, padding, dilation, ceil_mode) -> PyTorch's output
    // size, computed by hand from floor/ceil((in + 2p - d(k-1) - 1) / s) + 1 and
    // "the last window must start inside the input or the left padding".
    struct Case { std::int64_t in, k, s, p, d; bool ceil; std::int64_t expected; };
    const std::vector<Case> cases = {
        {5, 2, 2, 0, 1, false, 2},  {5, 2, 2, 0, 1, true, 3},    // ceil adds the partial window
        {6, 3, 2, 1, 1, false, 3},  {6, 3, 2, 1, 1, true, 4},
        {5, 3, 3, 1, 1, false, 2},  {5, 3, 3, 1, 1, true, 2},    // 3rd window would start in right padding
        {7, 2, 3, 1, 1, true, 3},                                // ceil gives 4, dropped back to 3
        {10, 3, 4, 0, 1, false, 2}, {10, 3, 4, 0, 1, true, 3},
        {10, 3, 1, 0, 2, false, 6}, {9, 3, 2, 2, 3, false, 4},  // dilation
        {224, 7, 2, 3, 1, false, 112}, {112, 3, 2, 1, 1, false, 56},
        {4, 4, 1, 0, 1, false, 1},  {2, 3, 1, 0, 1, false, 0},    // kernel larger than input
        {1, 1, 2, 0, 1, true, 1},
    };
    for (const Case& c : cases)
        EXPECT_EQ(ir::window_output_size(c.in, c.k, c.s, c.p, c.d, c.ceil), c.expected)
            << "in=" << c.in << " k=" << c.k << " s=" << c.s << " p=" << c.p << " d=" << c.d << " ceil=" << c.ceil;
}

TEST(ShapeInference, Conv2dWithStridePaddingDilationGroups) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 6, 17, 19}, DType::Float32);
    const int w = g.add_parameter("w", {12, 3, 3, 5}, DType::Float32);
    const int b = g.add_parameter("b", {12}, DType::Float32);
    // H: (17 + 2 - 2*2 - 1)/2 + 1 = 8;  W: (19 + 4 - 4 - 1)/3 + 1 = 7
    const int y = g.add_node(Op::Conv2d, {x, w, b},
                             attrs({{"stride", Ints{2, 3}}, {"padding", Ints{1, 2}}, {"dilation", Ints{2, 1}},
                                    {"groups", std::int64_t{2}}}),
                             "");
    EXPECT_EQ(g.tensor(y).shape, (Shape{2, 12, 8, 7}));
    // A single value means both spatial axes.
    const int z = g.add_node(Op::Conv2d, {x, g.add_parameter("w2", {4, 6, 3, 3}, DType::Float32)},
                             attrs({{"stride", std::int64_t{2}}, {"padding", std::int64_t{1}}}), "");
    EXPECT_EQ(g.tensor(z).shape, (Shape{2, 4, 9, 10}));
    // Depthwise.
    const int d = g.add_node(Op::Conv2d, {x, g.add_parameter("wd", {6, 1, 3, 3}, DType::Float32)},
                             attrs({{"groups", std::int64_t{6}}}), "");
    EXPECT_EQ(g.tensor(d).shape, (Shape{2, 6, 15, 17}));
}

TEST(ShapeInference, Conv2dRejectsMismatches) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 6, 8, 8}, DType::Float32);
    int count = 0;
    auto w = [&g, &count](Shape shape) {
        return g.add_parameter("w" + std::to_string(count++), shape, DType::Float32);
    };
    EXPECT_THROW(g.add_node(Op::Conv2d, {x, w({8, 4, 3, 3})}, {}, ""), ShapeError);  // channels
    EXPECT_THROW(g.add_node(Op::Conv2d, {x, w({8, 3, 3, 3})}, attrs({{"groups", std::int64_t{4}}}), ""), ShapeError);
    EXPECT_THROW(g.add_node(Op::Conv2d, {x, w({8, 6, 3, 3}), w({7})}, {}, ""), ShapeError);  // bias
    EXPECT_THROW(g.add_node(Op::Conv2d, {x, w({8, 6, 9, 9})}, {}, ""), ShapeError);        // kernel too big
    EXPECT_THROW(g.add_node(Op::Conv2d, {x, w({8, 6, 3, 3})}, attrs({{"stride", std::int64_t{0}}}), ""), ShapeError);
    EXPECT_THROW(g.add_node(Op::Conv2d, {g.add_input("flat", {6, 8}, DType::Float32), w({8, 6, 3, 3})}, {}, ""),
                 ShapeError);
    EXPECT_THROW(g.add_node(Op::Conv2d, {x, w({8, 6, 3, 3})}, attrs({{"stride", Ints{1, 1, 1}}}), ""), ShapeError);
}

TEST(ShapeInference, LinearOn1d2d3dInputs) {
    ir::Graph g;
    const int w = g.add_parameter("w", {3, 10}, DType::Float32);
    const int b = g.add_parameter("b", {3}, DType::Float32);
    EXPECT_EQ(g.tensor(g.add_node(Op::Linear, {g.add_input("a", {4, 10}, DType::Float32), w, b}, {}, "")).shape,
              (Shape{4, 3}));
    EXPECT_EQ(g.tensor(g.add_node(Op::Linear, {g.add_input("c", {2, 5, 10}, DType::Float32), w}, {}, "")).shape,
              (Shape{2, 5, 3}));
    EXPECT_EQ(g.tensor(g.add_node(Op::Linear, {g.add_input("d", {10}, DType::Float32), w}, {}, "")).shape, (Shape{3}));
    EXPECT_THROW(g.add_node(Op::Linear, {g.add_input("e", {4, 9}, DType::Float32), w}, {}, ""), ShapeError);
    EXPECT_THROW(g.add_node(Op::Linear, {g.add_input("f", {4, 10}, DType::Float32), w,
                                         g.add_parameter("b5", {5}, DType::Float32)}, {}, ""),
                 ShapeError);
}

TEST(ShapeInference, PoolingWithCeilModePaddingAndDefaults) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 7, 5}, DType::Float32);
    auto pool = [&](Op op, ir::Attributes a) { return g.tensor(g.add_node(op, {x}, std::move(a), "")).shape; };
    // stride defaults to the kernel: H (7-3)/3+1 = 2, W (5-3)/3+1 = 1
    EXPECT_EQ(pool(Op::MaxPool2d, attrs({{"kernel", Ints{3, 3}}})), (Shape{1, 3, 2, 1}));
    // ceil: H ceil(4/3)+1 = 3 (starts at 6 < 7), W ceil(2/3)+1 = 2 (starts at 3 < 5)
    EXPECT_EQ(pool(Op::MaxPool2d, attrs({{"kernel", Ints{3, 3}}, {"ceil_mode", std::int64_t{1}}})),
              (Shape{1, 3, 3, 2}));
    // k=3 s=3 p=1 ceil on 7: ceil(6/3)+1 = 3, (3-1)*3 = 6 < 8 keeps 3; on 5: ceil(4/3)+1 = 3, 6 >= 6 drops to 2
    EXPECT_EQ(pool(Op::AvgPool2d,
                   attrs({{"kernel", Ints{3, 3}}, {"padding", Ints{1, 1}}, {"ceil_mode", std::int64_t{1}}})),
              (Shape{1, 3, 3, 2}));
    EXPECT_EQ(pool(Op::MaxPool2d, attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{1, 1}}, {"dilation", Ints{2, 2}}})),
              (Shape{1, 3, 5, 3}));
    EXPECT_EQ(pool(Op::AdaptiveAvgPool2d, attrs({{"output_size", Ints{1, 1}}})), (Shape{1, 3, 1, 1}));
    EXPECT_EQ(pool(Op::AdaptiveAvgPool2d, attrs({{"output_size", std::int64_t{4}}})), (Shape{1, 3, 4, 4}));
    // PyTorch: "pad should be at most half of effective kernel size"
    EXPECT_THROW(pool(Op::MaxPool2d, attrs({{"kernel", Ints{2, 2}}, {"padding", Ints{2, 2}}})), ShapeError);
    EXPECT_THROW(pool(Op::MaxPool2d, attrs({{"kernel", Ints{9, 9}}})), ShapeError);
    EXPECT_THROW(pool(Op::MaxPool2d, {}), ShapeError);  // kernel is required
    EXPECT_THROW(pool(Op::AdaptiveAvgPool2d, attrs({{"output_size", Ints{0, 2}}})), ShapeError);
    EXPECT_THROW(g.add_node(Op::MaxPool2d, {g.add_input("x3", {3, 7, 5}, DType::Float32)},
                            attrs({{"kernel", Ints{2, 2}}}), ""),
                 ShapeError);
}

TEST(ShapeInference, ReshapeWithMinusOne) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3, 4}, DType::Int64);
    auto reshape = [&](Ints shape) { return g.tensor(g.add_node(Op::Reshape, {x}, attrs({{"shape", shape}}), "")); };
    EXPECT_EQ(reshape({-1, 4}).shape, (Shape{6, 4}));
    EXPECT_EQ(reshape({4, -1}).shape, (Shape{4, 6}));
    EXPECT_EQ(reshape({-1}).shape, (Shape{24}));
    EXPECT_EQ(reshape({2, -1, 2, 3}).shape, (Shape{2, 2, 2, 3}));
    EXPECT_EQ(reshape({24}).dtype, DType::Int64);
    EXPECT_THROW(reshape({-1, -1}), ShapeError);
    EXPECT_THROW(reshape({5, -1}), ShapeError);  // 24 is not a multiple of 5
    EXPECT_THROW(reshape({5, 5}), ShapeError);
    EXPECT_THROW(reshape({-2, 12}), ShapeError);
}

TEST(ShapeInference, PermuteAndConcat) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3, 4}, DType::Float32);
    const int y = g.add_input("y", {2, 5, 4}, DType::Float32);
    auto node = [&](Op op, std::vector<int> in, ir::Attributes a) { return g.tensor(g.add_node(op, in, a, "")).shape; };
    EXPECT_EQ(node(Op::Permute, {x}, attrs({{"dims", Ints{2, 0, 1}}})), (Shape{4, 2, 3}));
    EXPECT_EQ(node(Op::Permute, {x}, attrs({{"dims", Ints{-1, 0, 1}}})), (Shape{4, 2, 3}));
    EXPECT_THROW(node(Op::Permute, {x}, attrs({{"dims", Ints{0, 0, 1}}})), ShapeError);
    EXPECT_THROW(node(Op::Permute, {x}, attrs({{"dims", Ints{1, 0}}})), ShapeError);
    EXPECT_THROW(node(Op::Permute, {x}, attrs({{"dims", Ints{0, 1, 3}}})), ShapeError);

    EXPECT_EQ(node(Op::Concat, {x, y, x}, attrs({{"axis", std::int64_t{1}}})), (Shape{2, 11, 4}));
    EXPECT_EQ(node(Op::Concat, {x, y}, attrs({{"axis", std::int64_t{-2}}})), (Shape{2, 8, 4}));
    EXPECT_EQ(node(Op::Concat, {x}, attrs({{"axis", std::int64_t{0}}})), (Shape{2, 3, 4}));
    EXPECT_THROW(node(Op::Concat, {x, y}, attrs({{"axis", std::int64_t{0}}})), ShapeError);
    EXPECT_THROW(node(Op::Concat, {x, y}, attrs({{"axis", std::int64_t{3}}})), ShapeError);
    EXPECT_THROW(node(Op::Concat, {x, g.add_input("i", {2, 3, 4}, DType::Int64)}, attrs({{"axis", std::int64_t{0}}})),
                 ShapeError);
    EXPECT_THROW(node(Op::Concat, {x, g.add_input("r2", {2, 3}, DType::Float32)}, attrs({{"axis", std::int64_t{0}}})),
                 ShapeError);
}

// PyTorch: "zero-dimensional tensor cannot be concatenated". Run in a child
// process: the check must be a ShapeError, not a write past an empty shape.
TEST(ShapeInference, ConcatOfScalarsIsAShapeError) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(
        {
            ir::Graph g;
            const int a = g.add_input("a", {}, DType::Float32);
            const int b = g.add_input("b", {}, DType::Float32);
            int code = 1;
            try {
                g.add_node(Op::Concat, {a, b}, attrs({{"axis", std::int64_t{0}}}), "");
            } catch (const ShapeError&) {
                code = 0;
            }
            std::exit(code);
        },
        ::testing::ExitedWithCode(0), "");
}

TEST(ShapeInference, SoftmaxAxisIsChecked) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3}, DType::Float32);
    EXPECT_EQ(g.tensor(g.add_node(Op::Softmax, {x}, attrs({{"axis", std::int64_t{1}}}), "")).shape, (Shape{2, 3}));
    EXPECT_EQ(g.tensor(g.add_node(Op::LogSoftmax, {x}, attrs({{"axis", std::int64_t{-2}}}), "")).shape, (Shape{2, 3}));
    EXPECT_THROW(g.add_node(Op::Softmax, {x}, attrs({{"axis", std::int64_t{2}}}), ""), ShapeError);
    EXPECT_THROW(g.add_node(Op::Softmax, {x}, attrs({{"axis", std::int64_t{-3}}}), ""), ShapeError);
    EXPECT_THROW(g.add_node(Op::Softmax, {x}, {}, ""), ShapeError);  // axis is required
}

TEST(ShapeInference, BroadcastingFollowsNumpyRules) {
    EXPECT_EQ(ir::broadcast_shapes({2, 1, 4}, {3, 1}), (Shape{2, 3, 4}));
    EXPECT_EQ(ir::broadcast_shapes({3}, {}), (Shape{3}));
    EXPECT_EQ(ir::broadcast_shapes({}, {}), (Shape{}));
    EXPECT_EQ(ir::broadcast_shapes({1}, {5, 1, 1}), (Shape{5, 1, 1}));
    EXPECT_EQ(ir::broadcast_shapes({8, 1, 1}, {2, 8, 4, 4}), (Shape{2, 8, 4, 4}));
    EXPECT_EQ(ir::broadcast_shapes({0, 1}, {1, 3}), (Shape{0, 3}));
    EXPECT_THROW(ir::broadcast_shapes({2, 3}, {4}), ShapeError);
    EXPECT_THROW(ir::broadcast_shapes({2, 3}, {3, 3}), ShapeError);

    ir::Graph g;
    const int a = g.add_input("a", {2, 1, 4}, DType::Float32);
    const int b = g.add_input("b", {3, 1}, DType::Float32);
    const int c = g.add_node(Op::Add, {a, b}, {}, "");
    EXPECT_EQ(g.tensor(c).shape, (Shape{2, 3, 4}));
    const int half = g.add_constant(0.5, DType::Float32);
    EXPECT_EQ(g.tensor(g.add_node(Op::Mul, {half, c}, {}, "")).shape, (Shape{2, 3, 4}));
}

TEST(ShapeInference, DtypeRules) {
    ir::Graph g;
    const int f = g.add_input("f", {4}, DType::Float32);
    const int i = g.add_input("i", {4}, DType::Int64);
    const int flag = g.add_input("flag", {4}, DType::Bool);
    EXPECT_EQ(g.tensor(g.add_node(Op::Add, {i, i}, {}, "")).dtype, DType::Int64);
    EXPECT_EQ(g.tensor(g.add_node(Op::Mul, {i, g.add_constant(2, DType::Int64)}, {}, "")).dtype, DType::Int64);
    EXPECT_THROW(g.add_node(Op::Add, {f, i}, {}, ""), ShapeError);  // mixed dtypes
    EXPECT_THROW(g.add_node(Op::Mul, {i, g.add_constant(2.0, DType::Float32)}, {}, ""), ShapeError);
    EXPECT_THROW(g.add_node(Op::Add, {flag, flag}, {}, ""), ShapeError);  // bool arithmetic
    EXPECT_THROW(g.add_node(Op::Relu, {flag}, {}, ""), ShapeError);
    EXPECT_THROW(g.add_node(Op::Sigmoid, {i}, {}, ""), ShapeError);      // FloatOnly
    EXPECT_THROW(g.add_node(Op::MaxPool2d, {g.add_input("i4", {1, 1, 4, 4}, DType::Int64)},
                            attrs({{"kernel", Ints{2, 2}}}), ""),
                 ShapeError);
    EXPECT_EQ(g.tensor(g.add_node(Op::Reshape, {flag}, attrs({{"shape", Ints{2, 2}}}), "")).dtype, DType::Bool);
    try {
        g.add_node(Op::Exp, {i}, {}, "net.head (model.py:9)");
        FAIL() << "exp of int64 must throw";
    } catch (const ShapeError& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("float32"), std::string::npos) << message;
        EXPECT_NE(message.find("int64"), std::string::npos) << message;
        EXPECT_NE(message.find("'exp'"), std::string::npos) << message;
        EXPECT_NE(message.find("net.head (model.py:9)"), std::string::npos) << message;
    }
}

// torch: int64 / int64 is true division with a float result (7 / 2 = 3.5).
// An int64 result computed with C++'s truncating division is silently wrong;
// the op must either produce float32 or be refused.
TEST(ShapeInference, Int64DivisionIsNotSilentlyTruncated) {
    ir::Graph g;
    const int i = g.add_input("i", {4}, DType::Int64);
    try {
        const int q = g.add_node(Op::Div, {i, g.add_constant(2, DType::Int64)}, {}, "");
        EXPECT_EQ(g.tensor(q).dtype, DType::Float32) << "int64 / int64 inferred as int64 (truncating)";
    } catch (const ShapeError& error) {
        SUCCEED() << error.what();
    }
}

TEST(ShapeInference, AttributesConvertLosslesslyAndNameTheKey) {
    const ir::Attributes a = attrs({{"n", 3.0}, {"f", std::int64_t{2}}, {"half", 0.5}, {"list", Ints{1, 2}}});
    EXPECT_EQ(a.get_int("n"), 3);
    EXPECT_EQ(a.get_float("f"), 2.0);
    EXPECT_EQ(a.get_ints("f"), (Ints{2}));
    EXPECT_EQ(a.get_int("missing", 7), 7);
    EXPECT_THROW(a.get_int("half"), ShapeError);
    EXPECT_THROW(a.get_float("list"), ShapeError);
    try {
        a.get_int("stride");
        FAIL();
    } catch (const ShapeError& error) {
        EXPECT_NE(std::string(error.what()).find("'stride'"), std::string::npos) << error.what();
    }
}

}  // namespace
