// Building graphs: ids, kinds, consumers, errors that name the op and the
// origin, op lookup, verification of broken graphs and the text form.
#include <gtest/gtest.h>

#include "sol/error.h"
#include "sol/ir/print.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
using ir::Shape;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(IrGraph, BuildsTensorsAndNodesInOrder) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int w = g.add_parameter("conv.weight", {4, 3, 3, 3}, DType::Float32);
    const int half = g.add_constant(0.5, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, w}, attrs({{"padding", Ints{1, 1}}}), "net.conv (m.py:1)");
    const int z = g.add_node(Op::Mul, {y, half}, {}, "");
    const int r = g.add_node(Op::Relu, {z}, {}, "");
    g.set_outputs({r});

    EXPECT_EQ(g.tensor_count(), 6u);
    EXPECT_EQ(g.inputs(), std::vector<int>{x});
    EXPECT_EQ(g.parameters(), std::vector<int>{w});
    EXPECT_EQ(g.outputs(), std::vector<int>{r});
    EXPECT_EQ(g.tensor(x).kind, ir::TensorKind::Input);
    EXPECT_EQ(g.tensor(w).kind, ir::TensorKind::Parameter);
    EXPECT_EQ(g.tensor(w).name, "conv.weight");
    EXPECT_EQ(g.tensor(half).kind, ir::TensorKind::Constant);
    EXPECT_EQ(g.tensor(half).value, 0.5);
    EXPECT_EQ(g.tensor(half).shape, Shape{});
    EXPECT_EQ(g.tensor(y).kind, ir::TensorKind::Intermediate);
    EXPECT_EQ(g.tensor(y).shape, (Shape{1, 4, 8, 8}));
    EXPECT_EQ(g.tensor(y).producer, 0);
    EXPECT_EQ(g.tensor(r).producer, 2);
    EXPECT_EQ(g.tensor(x).producer, -1);
    ASSERT_EQ(g.nodes().size(), 3u);
    EXPECT_EQ(g.nodes()[0].origin, "net.conv (m.py:1)");
    EXPECT_EQ(g.nodes()[0].cluster, -1);
    EXPECT_EQ(g.consumers(y), std::vector<int>{1});
    EXPECT_TRUE(g.consumers(r).empty());
    EXPECT_TRUE(g.is_output(r));
    EXPECT_FALSE(g.is_output(z));
    EXPECT_EQ(ir::element_count({2, 3, 4}), 24);
    EXPECT_EQ(ir::element_count({}), 1);
    EXPECT_EQ(ir::to_string(Shape{2, 3}), "[2,3]");
    expect_valid(g, "test graph");
}

TEST(IrGraph, ConsumersListsANodeReadingTwiceTwice) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int sq = g.add_node(Op::Mul, {x, x}, {}, "");
    g.add_node(Op::Neg, {x}, {}, "");
    g.set_outputs({sq});
    EXPECT_EQ(g.consumers(x), (std::vector<int>{0, 0, 1}));
}

TEST(IrGraph, ParameterDerivedFollowsParametersAndConstantsOnly) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int p = g.add_parameter("p", {4}, DType::Float32);
    const int c = g.add_constant(2.0, DType::Float32);
    const int scaled = g.add_node(Op::Mul, {p, c}, {}, "");       // derived
    const int root = g.add_node(Op::Sqrt, {scaled}, {}, "");      // derived
    const int mixed = g.add_node(Op::Add, {x, root}, {}, "");     // per call
    const int from_mixed = g.add_node(Op::Exp, {mixed}, {}, "");  // per call
    g.set_outputs({from_mixed});
    const auto derived = g.parameter_derived();
    EXPECT_FALSE(derived[x]);
    EXPECT_TRUE(derived[p]);
    EXPECT_TRUE(derived[c]);
    EXPECT_TRUE(derived[scaled]);
    EXPECT_TRUE(derived[root]);
    EXPECT_FALSE(derived[mixed]);
    EXPECT_FALSE(derived[from_mixed]);
}

TEST(IrGraph, ReplaceUsesAndRemoveNodesDropUnreadParameters) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int p = g.add_parameter("p", {4}, DType::Float32);
    const int q = g.add_parameter("q", {4}, DType::Float32);
    const int a = g.add_node(Op::Add, {x, p}, {}, "");
    const int b = g.add_node(Op::Mul, {a, q}, {}, "");
    const int c = g.add_node(Op::Relu, {b}, {}, "");
    g.set_outputs({c, b});
    g.replace_uses(b, a);  // skip the multiplication
    EXPECT_EQ(g.nodes()[2].inputs, std::vector<int>{a});
    EXPECT_EQ(g.outputs(), (std::vector<int>{c, a}));
    g.remove_nodes({false, true, false});
    EXPECT_EQ(op_names(g), "add relu");
    EXPECT_EQ(parameter_names(g), std::vector<std::string>{"p"});  // q is read by nobody now
    EXPECT_EQ(g.tensor(c).producer, 1);                              // producers refreshed
    EXPECT_EQ(g.inputs(), std::vector<int>{x});
    expect_valid(g, "after removing mul");
}

TEST(IrGraph, SortTopologicallyRestoresOrderAndDetectsCycles) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    const int a = g.add_node(Op::Relu, {x}, {}, "");
    const int b = g.add_node(Op::Neg, {a}, {}, "");
    const int c = g.add_node(Op::Exp, {x}, {}, "");
    g.set_outputs({b, c});
    std::swap(g.nodes()[0], g.nodes()[1]);  // neg now reads relu before it runs
    g.sort_topologically();
    EXPECT_EQ(op_names(g), "relu neg exp");
    EXPECT_EQ(g.tensor(b).producer, 1);
    expect_valid(g, "after sorting");

    g.nodes()[0].inputs = {b};  // relu reads neg, neg reads relu
    EXPECT_THROW(g.sort_topologically(), sol::Error);
}

TEST(IrGraph, ShapeErrorNamesOpAndOrigin) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int w = g.add_parameter("w", {4, 5, 3, 3}, DType::Float32);
    try {
        g.add_node(Op::Conv2d, {x, w}, {}, "net.features.0 (model.py:42)");
        FAIL() << "conv2d with 3 input channels and a weight for 5 must throw";
    } catch (const sol::ShapeError& error) {
        const std::string message = error.what();
        EXPECT_TRUE(contains(message, "op 'conv2d'")) << message;
        EXPECT_TRUE(contains(message, "net.features.0 (model.py:42)")) << message;
        EXPECT_TRUE(contains(message, "[4,5,3,3]")) << message;  // the culprit's shape
    }
    EXPECT_EQ(g.nodes().size(), 0u) << "a failed add_node must not leave a node behind";

    const int a = g.add_input("a", {2, 3}, DType::Float32);
    const int b = g.add_input("b", {4}, DType::Float32);
    try {
        g.add_node(Op::Add, {a, b}, {}, "net.head (model.py:7)");
        FAIL();
    } catch (const sol::ShapeError& error) {
        const std::string message = error.what();
        EXPECT_TRUE(contains(message, "op 'add' at net.head (model.py:7)")) << message;
        EXPECT_TRUE(contains(message, "[2,3]") && contains(message, "[4]")) << message;
    }
}

TEST(IrGraph, WrongInputCountsAndIdsThrow) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    try {
        g.add_node(Op::Relu, {x, x}, {}, "act");
        FAIL();
    } catch (const sol::ShapeError& error) {
        EXPECT_TRUE(contains(error.what(), "op 'relu' at act")) << error.what();
        EXPECT_TRUE(contains(error.what(), "got 2")) << error.what();
    }
    EXPECT_THROW(g.add_node(Op::BatchNorm, {x, x}, {}, ""), sol::ShapeError);
    EXPECT_THROW(g.add_node(Op::Concat, {}, attrs({{"axis", std::int64_t{0}}}), ""), sol::ShapeError);
    EXPECT_THROW(g.add_node(Op::Relu, {17}, {}, ""), sol::Error);  // no such tensor
    EXPECT_THROW(g.tensor(-1), sol::Error);
    EXPECT_THROW(g.set_outputs({99}), sol::Error);
    EXPECT_THROW(g.add_input("bad", {2, -3}, DType::Float32), sol::ShapeError);
    g.add_parameter("p", {1}, DType::Float32);
    EXPECT_THROW(g.add_parameter("p", {1}, DType::Float32), sol::Error);
}

// The Python front end makes `x_int64 * 0.5` a constant of x's dtype. An
// int64 constant 0.5 would be emitted as INT64_C(0) and turn the product into
// zeros (PyTorch gives a float tensor): it must be refused, not truncated.
TEST(IrGraph, NonIntegralInt64ConstantIsRefused) {
    ir::Graph g;
    EXPECT_NO_THROW(g.add_constant(3, DType::Int64));
    EXPECT_NO_THROW(g.add_constant(-2.0, DType::Int64));
    EXPECT_THROW(g.add_constant(0.5, DType::Int64), sol::Error);
    EXPECT_THROW(g.add_constant(1e30, DType::Int64), sol::Error);  // not representable
}

TEST(IrGraph, ParseOpListsKnownOpsWhenUnknown) {
    EXPECT_EQ(ir::parse_op("conv2d"), Op::Conv2d);
    EXPECT_EQ(ir::parse_op("log_softmax"), Op::LogSoftmax);
    try {
        ir::parse_op("conv3d");
        FAIL() << "conv3d is not an op of SOL";
    } catch (const sol::ShapeError&) {
        FAIL() << "an unknown op is not a shape error";
    } catch (const sol::Error& error) {
        const std::string message = error.what();
        EXPECT_TRUE(contains(message, "'conv3d'")) << message;
        for (const ir::OpInfo& row : ir::kOpTable)
            EXPECT_TRUE(contains(message, std::string(row.name))) << "missing " << row.name << " in " << message;
    }
    EXPECT_THROW(ir::parse_op(""), sol::Error);
    EXPECT_THROW(ir::parse_op("Conv2d"), sol::Error);  // names are exact
}

TEST(IrGraph, ParseDtype) {
    EXPECT_EQ(ir::parse_dtype("float32"), DType::Float32);
    EXPECT_EQ(ir::parse_dtype("torch.int64"), DType::Int64);
    EXPECT_EQ(ir::byte_size(DType::Int64), 8u);
    try {
        ir::parse_dtype("float16");
        FAIL();
    } catch (const sol::Error& error) {
        EXPECT_TRUE(contains(error.what(), "'float16'")) << error.what();
    }
}

// a -> relu -> b -> sigmoid -> c, then the nodes swapped by hand: sigmoid
// reads b before the node that defines it.
TEST(IrVerify, CatchesAReadBeforeTheDefinitionWithContext) {
    ir::Graph g;
    const int a = g.add_input("a", {4}, DType::Float32);
    const int b = g.add_node(Op::Relu, {a}, {}, "");
    const int c = g.add_node(Op::Sigmoid, {b}, {}, "");
    g.set_outputs({c});
    expect_valid(g, "before editing");
    std::swap(g.nodes()[0], g.nodes()[1]);
    try {
        ir::verify(g, "after my_broken_pass");
        FAIL() << "verify must reject a node reading a later tensor";
    } catch (const sol::Error& error) {
        const std::string message = error.what();
        EXPECT_TRUE(contains(message, "after my_broken_pass")) << message;
        EXPECT_TRUE(contains(message, "sigmoid")) << message;
        EXPECT_TRUE(contains(message, "%" + std::to_string(b))) << message;
        EXPECT_TRUE(contains(message, "before it is defined")) << message;
    }
}

TEST(IrVerify, CatchesStaleTypesMissingOutputsAndUnknownTensors) {
    auto build = [] {
        ir::Graph g;
        const int x = g.add_input("x", {2, 6}, DType::Float32);
        const int r = g.add_node(Op::Reshape, {x}, attrs({{"shape", Ints{3, 4}}}), "");
        g.set_outputs({g.add_node(Op::Relu, {r}, {}, "")});
        return g;
    };
    auto message_of = [](const ir::Graph& g) -> std::string {
        try {
            ir::verify(g, "in the test");
        } catch (const sol::Error& error) {
            return error.what();
        }
        return "";
    };
    ir::Graph stale = build();
    stale.nodes()[0].attrs.set("shape", Ints{4, 3});  // output tensor still says [3,4]
    EXPECT_TRUE(contains(message_of(stale), "in the test")) << message_of(stale);
    EXPECT_TRUE(contains(message_of(stale), "reshape")) << message_of(stale);

    ir::Graph no_outputs = build();
    no_outputs.set_outputs({});
    EXPECT_TRUE(contains(message_of(no_outputs), "no outputs")) << message_of(no_outputs);

    ir::Graph unknown = build();
    unknown.nodes()[1].inputs = {1000};
    EXPECT_TRUE(contains(message_of(unknown), "unknown tensor")) << message_of(unknown);

    ir::Graph redefined = build();
    redefined.nodes()[1].output = redefined.nodes()[0].output;
    EXPECT_FALSE(message_of(redefined).empty());

    ir::Graph dropped = build();
    dropped.nodes().pop_back();  // the output is never computed
    EXPECT_FALSE(message_of(dropped).empty());
}

TEST(IrPrint, ShowsOpsShapesOriginsAndConstants) {
    ir::Graph g;
    const int x = g.add_input("image", {1, 3, 8, 8}, DType::Float32);
    const int w = g.add_parameter("features.0.weight", {4, 3, 3, 3}, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, w}, attrs({{"padding", Ints{1, 1}}}), "features.0 (model.py:12)");
    const int z = g.add_node(Op::Mul, {y, g.add_constant(0.25, DType::Float32)}, {}, "");
    g.set_outputs({z});
    g.nodes()[0].cluster = 3;
    const std::string text = ir::to_text(g);
    EXPECT_TRUE(contains(text, "input %0 \"image\": f32[1,3,8,8]")) << text;
    EXPECT_TRUE(contains(text, "param %1 \"features.0.weight\": f32[4,3,3,3]")) << text;
    EXPECT_TRUE(contains(text, "conv2d(%0, %1) padding=[1,1] : f32[1,4,8,8]")) << text;
    EXPECT_TRUE(contains(text, "[kernel 3]")) << text;
    EXPECT_TRUE(contains(text, "# features.0 (model.py:12)")) << text;
    EXPECT_TRUE(contains(text, "mul(%" + std::to_string(y) + ", 0.25)")) << text;
    EXPECT_TRUE(contains(text, "return %" + std::to_string(z))) << text;
}

}  // namespace
