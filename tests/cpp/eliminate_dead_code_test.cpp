// eliminate_dead_code: nodes whose results never reach an output go, and so
// do the parameters only they read; inputs always stay.
#include <gtest/gtest.h>

#include "sol/passes/eliminate_dead_code.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

TEST(EliminateDeadCode, RemovesADeadBranchWithItsParameter) {
    ir::Graph g;
    const int x = g.add_input("x", {2, 8}, DType::Float32);
    const int w = g.add_parameter("fc.weight", {4, 8}, DType::Float32);
    const int aux_w = g.add_parameter("aux.weight", {3, 8}, DType::Float32);
    const int aux_b = g.add_parameter("aux.bias", {3}, DType::Float32);
    const int y = g.add_node(Op::Linear, {x, w}, {}, "fc");
    const int aux = g.add_node(Op::Linear, {x, aux_w, aux_b}, {}, "aux");  // dead
    g.add_node(Op::Relu, {aux}, {}, "aux_act");                            // dead
    const int out = g.add_node(Op::Sigmoid, {y}, {}, "head");
    g.set_outputs({out});
    sol::passes::eliminate_dead_code(g);

    ASSERT_EQ(ops(g), (std::vector<Op>{Op::Linear, Op::Sigmoid})) << op_names(g);
    EXPECT_EQ(g.nodes()[0].origin, "fc");
    EXPECT_EQ(parameter_names(g), std::vector<std::string>{"fc.weight"});
    EXPECT_EQ(g.inputs(), std::vector<int>{x});
    EXPECT_EQ(g.outputs(), std::vector<int>{out});
    EXPECT_EQ(g.tensor(out).producer, 1);
    expect_valid(g, "after eliminate_dead_code");
}

TEST(EliminateDeadCode, KeepsSharedProducersAndParametersReadByLiveNodes) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int unused = g.add_input("unused", {4}, DType::Float32);
    const int p = g.add_parameter("p", {4}, DType::Float32);
    const int shared = g.add_node(Op::Mul, {x, p}, {}, "");
    g.add_node(Op::Add, {shared, p}, {}, "");     // dead, but p and shared live on
    g.add_node(Op::Exp, {unused}, {}, "");        // dead
    const int live = g.add_node(Op::Neg, {shared}, {}, "");
    g.set_outputs({live});
    sol::passes::eliminate_dead_code(g);

    EXPECT_EQ(ops(g), (std::vector<Op>{Op::Mul, Op::Neg})) << op_names(g);
    EXPECT_EQ(parameter_names(g), std::vector<std::string>{"p"});
    EXPECT_EQ(g.inputs(), (std::vector<int>{x, unused})) << "the caller passes every input";
    expect_valid(g, "after eliminate_dead_code");
}

TEST(EliminateDeadCode, KeepsEverythingWhenAllIsLive) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int a = g.add_node(Op::Relu, {x}, {}, "");
    const int b = g.add_node(Op::Exp, {a}, {}, "");
    g.set_outputs({a, b});
    const std::string before = ir::to_text(g);
    sol::passes::eliminate_dead_code(g);
    EXPECT_EQ(ir::to_text(g), before);
}

TEST(EliminateDeadCode, ParameterReturnedDirectlyStays) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int p = g.add_parameter("p", {4}, DType::Float32);
    g.add_node(Op::Add, {x, p}, {}, "");  // dead
    g.set_outputs({p});
    sol::passes::eliminate_dead_code(g);
    EXPECT_TRUE(g.nodes().empty());
    EXPECT_EQ(parameter_names(g), std::vector<std::string>{"p"});
    expect_valid(g, "after eliminate_dead_code");
}

}  // namespace
