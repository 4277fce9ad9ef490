// passes/autodiff: the forward/backward split of a training step. The
// gradients' numbers are checked against PyTorch autograd op by op in
// tests/python/test_training.py; here the structure: what is saved, what is
// recomputed, how the backward graph's inputs are named, which gradients
// exist, and the errors.
#include <gtest/gtest.h>

#include <algorithm>

#include "sol/error.h"
#include "sol/passes/autodiff.h"
#include "sol/passes/pipeline.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

std::vector<std::string> input_names(const ir::Graph& g) {
    std::vector<std::string> names;
    for (int id : g.inputs()) names.push_back(g.tensor(id).name);
    return names;
}

bool has(const std::vector<std::string>& list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
}

// x [4, 8] -> linear(w1, b1) -> relu -> linear(w2, b2) -> softmax
ir::Graph mlp() {
    ir::Graph g;
    const int x = g.add_input("x", {4, 8}, DType::Float32);
    auto param = [&g](const char* name, ir::Shape shape) { return g.add_parameter(name, shape, DType::Float32); };
    const int h = g.add_node(Op::Relu, {g.add_node(Op::Linear, {x, param("w1", {16, 8}), param("b1", {16})}, {}, "fc1")}, {}, "relu");
    const int y = g.add_node(Op::Linear, {h, param("w2", {3, 16}), param("b2", {3})}, {}, "fc2");
    g.set_outputs({g.add_node(Op::Softmax, {y}, attrs({{"axis", std::int64_t{1}}}), "softmax")});
    return g;
}

TEST(Autodiff, MlpSavesTheActivationsItsGradientsRead) {
    const ir::Graph g = mlp();
    const auto graphs = sol::passes::differentiate(g, {"w1", "b1", "w2", "b2"});
    EXPECT_EQ(graphs.gradient_of, (std::vector<std::string>{"w1", "b1", "w2", "b2"}));
    EXPECT_EQ(graphs.model_outputs, 1);
    // The softmax result is a model output (read back as saved:0); the relu
    // result is the one extra saved activation (fc2's input, and ReLU's
    // backward reads it); the input x is passed as itself.
    ASSERT_EQ(graphs.forward.outputs().size(), 2u);
    const auto names = input_names(graphs.backward);
    EXPECT_TRUE(has(names, "grad:0"));
    EXPECT_TRUE(has(names, "saved:0"));
    EXPECT_TRUE(has(names, "saved:1"));
    EXPECT_TRUE(has(names, "x"));
    EXPECT_EQ(graphs.backward.outputs().size(), 4u);
    EXPECT_EQ(graphs.backward.tensor(graphs.backward.outputs()[0]).shape, (ir::Shape{16, 8}));
    EXPECT_EQ(graphs.backward.tensor(graphs.backward.outputs()[3]).shape, (ir::Shape{3}));
    expect_valid(graphs.forward, "forward");
    expect_valid(graphs.backward, "backward");
}

TEST(Autodiff, OnlyRequestedGradientsAreComputed) {
    const auto graphs = sol::passes::differentiate(mlp(), {"w2"});
    EXPECT_EQ(graphs.gradient_of, (std::vector<std::string>{"w2"}));
    // fc1's backward is not needed: x is not read, w1 not at all.
    EXPECT_FALSE(has(input_names(graphs.backward), "x"));
    EXPECT_EQ(count_op(graphs.backward, Op::ReluGrad), 0);
}

TEST(Autodiff, InputGradientReadsTheWeights) {
    const auto graphs = sol::passes::differentiate(mlp(), {"x"});
    EXPECT_EQ(graphs.gradient_of, (std::vector<std::string>{"x"}));
    EXPECT_EQ(graphs.backward.tensor(graphs.backward.outputs()[0]).shape, (ir::Shape{4, 8}));
    std::vector<std::string> parameters;
    for (int id : graphs.backward.parameters()) parameters.push_back(graphs.backward.tensor(id).name);
    EXPECT_TRUE(has(parameters, "w1") && has(parameters, "w2"));
}

TEST(Autodiff, CheapElementwiseResultIsRecomputedNotSaved) {
    // y = tanh(x) * w: the gradients read tanh(x); x is at hand in the backward
    // graph anyway, so tanh is recomputed there and nothing is saved.
    ir::Graph g;
    const int x = g.add_input("x", {2, 5}, DType::Float32);
    const int t = g.add_node(Op::Tanh, {x}, {}, "tanh");
    g.set_outputs({g.add_node(Op::Mul, {t, g.add_parameter("w", {5}, DType::Float32)}, {}, "scale")});
    const auto graphs = sol::passes::differentiate(g, {"w", "x"});
    EXPECT_EQ(graphs.recomputed_nodes, 1);
    EXPECT_EQ(graphs.forward.outputs().size(), 1u);
    EXPECT_EQ(count_op(graphs.backward, Op::Tanh), 1);
    EXPECT_EQ(input_names(graphs.backward), (std::vector<std::string>{"grad:0", "x"}));
}

TEST(Autodiff, BroadcastOperandGradientIsSummedToItsShape) {
    ir::Graph g;
    const int x = g.add_input("x", {3, 4, 5}, DType::Float32);
    g.set_outputs({g.add_node(Op::Add, {x, g.add_parameter("b", {4, 1}, DType::Float32)}, {}, "add")});
    const auto graphs = sol::passes::differentiate(g, {"b"});
    EXPECT_EQ(graphs.backward.tensor(graphs.backward.outputs()[0]).shape, (ir::Shape{4, 1}));
    EXPECT_EQ(count_op(graphs.backward, Op::Sum), 1);
}

TEST(Autodiff, ParameterNoOutputDependsOnHasNoGradient) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3}, DType::Float32);
    g.add_parameter("unused", {3}, DType::Float32);
    g.set_outputs({g.add_node(Op::Relu, {x}, {}, "relu")});
    const auto graphs = sol::passes::differentiate(g, {"unused", "x"});
    EXPECT_EQ(graphs.gradient_of, (std::vector<std::string>{"x"}));
}

// BatchNorm's variance subtracts the batch mean marked stop_gradient: no
// gradient reaches the mean through that subtraction (only through the
// other reader), and a parameter read only there gets none at all.
TEST(Autodiff, StopGradientOperandGetsNoGradientThroughThatNode) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 3}, DType::Float32);
    const int p = g.add_parameter("p", {3}, DType::Float32);
    const int centered = g.add_node(Op::Sub, {x, p}, attrs({{"stop_gradient", Ints{1}}}), "centered");
    g.set_outputs({g.add_node(Op::Mul, {centered, centered}, {}, "square")});
    auto graphs = sol::passes::differentiate(g, {"p", "x"});
    EXPECT_EQ(graphs.gradient_of, (std::vector<std::string>{"x"}));
    EXPECT_EQ(count_op(graphs.backward, Op::Neg), 0) << "sub's rule for its second operand did not run";
    g.set_outputs({g.add_node(Op::Add, {g.add_node(Op::Mul, {centered, centered}, {}, ""), p}, {}, "")});
    graphs = sol::passes::differentiate(g, {"p", "x"});
    EXPECT_EQ(graphs.gradient_of, (std::vector<std::string>{"p", "x"}));
}

TEST(Autodiff, OpWithoutRuleIsNamedWithItsOrigin) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 2, 4, 4}, DType::Float32);
    // Gradient ops have no rules of their own (no second derivatives).
    g.set_outputs({g.add_node(Op::ReluGrad, {x, x}, {}, "features.3 (model.py:12)")});
    try {
        sol::passes::differentiate(g, {"x"});
        FAIL() << "relu_grad has no gradient rule";
    } catch (const sol::Error& error) {
        EXPECT_NE(std::string(error.what()).find("relu_grad"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("features.3 (model.py:12)"), std::string::npos) << error.what();
    }
}

TEST(Autodiff, OutputsPastTheDifferentiableOnesGetNoGradientInput) {
    // A second output such as BatchNorm's updated running mean: computed by
    // the forward graph, never differentiated.
    ir::Graph g;
    const int x = g.add_input("x", {2, 3}, DType::Float32);
    const int y = g.add_node(Op::Mul, {x, g.add_parameter("w", {3}, DType::Float32)}, {}, "scale");
    g.set_outputs({y, g.add_node(Op::Mean, {y}, attrs({{"axes", Ints{0}}}), "statistic")});
    const auto graphs = sol::passes::differentiate(g, {"w"}, 1);
    EXPECT_EQ(graphs.model_outputs, 2);
    EXPECT_EQ(input_names(graphs.backward), (std::vector<std::string>{"grad:0", "x"}));
    const auto all = sol::passes::differentiate(g, {"w"});
    EXPECT_EQ(input_names(all.backward), (std::vector<std::string>{"grad:0", "grad:1", "x"}));
}

TEST(Autodiff, UnknownNameIsAnError) {
    EXPECT_THROW(sol::passes::differentiate(mlp(), {"w9"}), sol::Error);
}

TEST(Autodiff, TrainingPipelineFusesBothGraphs) {
    ir::Graph g = mlp();
    const auto graphs = sol::passes::run_training_pipeline(g, {"w1", "b1", "w2", "b2", "x"});
    for (const ir::Graph* graph : {&graphs.forward, &graphs.backward})
        for (const ir::Node& node : graph->nodes()) EXPECT_GE(node.cluster, 0);
    // ReLU's gradient rides in the kernel of the matrix product producing its input.
    bool fused = false;
    for (const ir::Node& node : graphs.backward.nodes())
        if (node.op == Op::ReluGrad)
            for (const ir::Node& other : graphs.backward.nodes())
                fused = fused || (other.cluster == node.cluster && other.op == Op::Linear);
    EXPECT_TRUE(fused);
}

}  // namespace
