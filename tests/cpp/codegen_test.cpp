// Generated CPU source (codegen::cpu::generate_module): one kernel per fused
// cluster, identical kernels emitted once, the prologue in front, constants
// inlined as literals, calls in an order that respects data flow.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "kernel_builder.h"
#include "prologue_text.h"
#include "sol/codegen/cpu/generate_module.h"
#include "sol/error.h"
#include "sol/passes/fuse_elementwise.h"
#include "sol/passes/pipeline.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace cpu = sol::codegen::cpu;

int occurrences(const std::string& text, const std::string& part) {
    int count = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
    return count;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

int conv_relu(ir::Graph& g, int x, const std::string& name, std::int64_t channels) {
    const int w = g.add_parameter(name + ".weight", {channels, channels, 3, 3}, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, w}, attrs({{"padding", Ints{1, 1}}}), name);
    return g.add_node(Op::Relu, {y}, {}, name + ".relu");
}

TEST(Codegen, ConvReluClusterIsOneKernelFunction) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 16, 16}, DType::Float32);
    g.set_outputs({conv_relu(g, x, "features.0", 4)});
    ASSERT_EQ(sol::passes::fuse_elementwise(g), 1);
    const sol::codegen::GeneratedModule module = cpu::generate_module(g, cpu::CpuTarget{});

    ASSERT_EQ(module.calls.size(), 1u);
    EXPECT_EQ(module.unique_kernels, 1);
    EXPECT_EQ(occurrences(module.source, "extern \"C\" void sol_"), 1) << module.source;
    EXPECT_TRUE(contains(module.source, "extern \"C\" void " + module.calls[0].function + "(void* const* args)"));
    EXPECT_TRUE(contains(module.source, "sol_relu(")) << module.source;
    EXPECT_TRUE(contains(module.source, "#pragma omp simd")) << module.source;
    // Arguments: input, weight, then the output last.
    EXPECT_EQ(module.calls[0].arguments, (std::vector<int>{x, g.parameters()[0], g.outputs()[0]}));
    EXPECT_FALSE(module.calls[0].parameter_stage);
    EXPECT_TRUE(contains(module.calls[0].description, "conv2d + relu")) << module.calls[0].description;
    EXPECT_TRUE(contains(module.calls[0].description, "features.0")) << module.calls[0].description;
}

TEST(Codegen, IdenticalLayersShareOneKernel) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 8, 8}, DType::Float32);
    g.set_outputs({conv_relu(g, conv_relu(g, x, "layer1", 4), "layer2", 4)});
    sol::passes::fuse_elementwise(g);
    const auto module = cpu::generate_module(g, cpu::CpuTarget{});
    ASSERT_EQ(module.calls.size(), 2u);
    EXPECT_EQ(module.unique_kernels, 1);
    EXPECT_LT(static_cast<std::size_t>(module.unique_kernels), module.calls.size());
    EXPECT_EQ(module.calls[0].function, module.calls[1].function);
    EXPECT_NE(module.calls[0].arguments, module.calls[1].arguments) << "same code, different tensors";
    EXPECT_EQ(occurrences(module.source, "extern \"C\" void sol_"), 1);
}

TEST(Codegen, DifferentShapesGetDifferentKernels) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 8, 8}, DType::Float32);
    const int a = conv_relu(g, x, "layer1", 4);
    const int p = g.add_node(Op::MaxPool2d, {a}, attrs({{"kernel", Ints{2, 2}}}), "");
    g.set_outputs({conv_relu(g, p, "layer2", 4)});
    sol::passes::fuse_elementwise(g);
    const auto module = cpu::generate_module(g, cpu::CpuTarget{});
    ASSERT_EQ(module.calls.size(), 3u);
    EXPECT_EQ(module.unique_kernels, 3);
    EXPECT_NE(module.calls[0].function, module.calls[2].function);
}

TEST(Codegen, ModuleSourceStartsWithThePrologue) {
    ir::Graph g;
    const int x = g.add_input("x", {8}, DType::Float32);
    g.set_outputs({g.add_node(Op::Relu, {x}, {}, "")});
    sol::passes::fuse_elementwise(g);
    const auto module = cpu::generate_module(g, cpu::CpuTarget{});
    const std::size_t prologue = module.source.find(cpu::kKernelPrologue);
    ASSERT_NE(prologue, std::string::npos) << "the prologue must be pasted in whole";
    EXPECT_LT(prologue, module.source.find("extern \"C\"")) << "before the first kernel";
    EXPECT_TRUE(contains(cpu::kKernelPrologue, "sol_takes_max"));
    EXPECT_TRUE(contains(module.source, module.calls[0].function)) << "the plan comment names the kernels";
}

TEST(Codegen, ConstantsAppearAsLiterals) {
    ir::Graph g;
    const int x = g.add_input("x", {4, 4}, DType::Float32);
    const int half = g.add_constant(0.5, DType::Float32);
    const int three = g.add_constant(3.0, DType::Float32);
    const int a = g.add_node(Op::Mul, {x, half}, {}, "");
    const int b = g.add_node(Op::Add, {a, three}, {}, "");
    const int c = g.add_node(Op::Clamp, {b}, attrs({{"min", -0.25}, {"max", 1e-3}}), "");
    g.set_outputs({c});
    sol::passes::fuse_elementwise(g);
    const auto module = cpu::generate_module(g, cpu::CpuTarget{});
    ASSERT_EQ(module.calls.size(), 1u);
    EXPECT_TRUE(contains(module.source, "(0.5f)")) << module.source;
    EXPECT_TRUE(contains(module.source, "(3.0f)")) << module.source;
    EXPECT_TRUE(contains(module.source, "(-0.25f)")) << module.source;
    EXPECT_TRUE(contains(module.source, "(0.001f)")) << module.source;
    EXPECT_EQ(module.calls[0].arguments, (std::vector<int>{x, c})) << "constants are not passed by pointer";
}

TEST(Codegen, LiteralsReadBackAsTheSameFloat) {
    EXPECT_EQ(cpu::literal(0.5, DType::Float32), "(0.5f)");
    EXPECT_EQ(cpu::literal(2.0, DType::Float32), "(2.0f)");
    EXPECT_EQ(cpu::literal(INFINITY, DType::Float32), "INFINITY");
    EXPECT_EQ(cpu::literal(-INFINITY, DType::Float32), "(-INFINITY)");
    EXPECT_EQ(cpu::literal(NAN, DType::Float32), "NAN");
    EXPECT_EQ(cpu::literal(7, DType::Int64), "INT64_C(7)");
    EXPECT_EQ(cpu::literal(1, DType::Bool), "true");
    for (double value : {0.1, 1e-5, 3.14159265358979, -123456.789, 1e30, 6.0}) {
        const std::string text = cpu::literal(value, DType::Float32);
        ASSERT_GE(text.size(), 3u);
        EXPECT_EQ(text.front(), '(');
        EXPECT_EQ(text.substr(text.size() - 2), "f)");
        EXPECT_EQ(std::strtof(text.c_str() + 1, nullptr), static_cast<float>(value)) << text;
    }
}

// Every intermediate a kernel reads is written by an earlier call, and every
// call writes a distinct tensor.
void expect_data_flow_order(const ir::Graph& g, const sol::codegen::GeneratedModule& module) {
    std::set<int> written;
    for (const sol::codegen::KernelCall& call : module.calls) {
        for (std::size_t k = 0; k + 1 < call.arguments.size(); ++k) {
            const ir::Tensor& t = g.tensor(call.arguments[k]);
            if (t.kind == ir::TensorKind::Intermediate) {
                EXPECT_TRUE(written.count(t.id)) << call.function << " reads %" << t.id << " before it is written";
            }
        }
        EXPECT_TRUE(written.insert(call.arguments.back()).second) << "%" << call.arguments.back() << " written twice";
    }
}

TEST(Codegen, ResidualKernelRunsAfterTheBranchItReads) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 4, 8, 8}, DType::Float32);
    const int a = g.add_node(Op::Conv2d, {x, g.add_parameter("w1", {4, 4, 1, 1}, DType::Float32)}, {}, "");
    const int b = g.add_node(Op::Conv2d, {x, g.add_parameter("w2", {4, 4, 1, 1}, DType::Float32)}, {}, "");
    const int sum = g.add_node(Op::Add, {a, b}, {}, "");  // fused into a's kernel, reads b
    g.set_outputs({g.add_node(Op::Relu, {sum}, {}, "")});
    sol::passes::fuse_elementwise(g);
    const auto module = cpu::generate_module(g, cpu::CpuTarget{});
    ASSERT_EQ(module.calls.size(), 2u);
    EXPECT_EQ(module.calls[0].arguments.back(), b) << "the lone conv runs first";
    expect_data_flow_order(g, module);
}

TEST(Codegen, FoldedWeightsAreComputedInTheParameterStage) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 3, 8, 8}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d, {x, g.add_parameter("w", {4, 3, 3, 3}, DType::Float32)}, {}, "");
    std::vector<int> bn{conv};
    for (const char* name : {"m", "v", "g", "b"}) bn.push_back(g.add_parameter(name, {4}, DType::Float32));
    g.set_outputs({g.add_node(Op::Relu, {g.add_node(Op::BatchNorm, bn, attrs({{"eps", 1e-5}}), "")}, {}, "")});
    sol::passes::run_pipeline(g);
    const auto module = cpu::generate_module(g, cpu::CpuTarget{});
    expect_data_flow_order(g, module);
    int per_call = 0, weights = 0;
    for (const auto& call : module.calls) (call.parameter_stage ? weights : per_call)++;
    EXPECT_EQ(per_call, 1) << "conv + folded bias + relu";
    EXPECT_GE(weights, 1);
    EXPECT_TRUE(contains(module.source, "[weights]")) << "the plan marks weight kernels";
    EXPECT_TRUE(contains(module.source, "(1e-05f)")) << "eps is inlined";
}

TEST(Codegen, UnclusteredGraphIsRejected) {
    ir::Graph g;
    const int x = g.add_input("x", {4}, DType::Float32);
    g.set_outputs({g.add_node(Op::Relu, {x}, {}, "")});
    try {
        cpu::generate_module(g, cpu::CpuTarget{});
        FAIL() << "generate_module needs clusters";
    } catch (const sol::Error& error) {
        EXPECT_TRUE(contains(error.what(), "fuse_elementwise")) << error.what();
    }
}

TEST(Codegen, ParallelThresholdControlsOpenMP) {
    ir::Graph g;
    const int x = g.add_input("x", {64, 1024}, DType::Float32);
    g.set_outputs({g.add_node(Op::Exp, {x}, {}, "")});
    sol::passes::fuse_elementwise(g);
    cpu::CpuTarget small_work;
    small_work.parallel_threshold = 1 << 30;
    EXPECT_FALSE(contains(cpu::generate_module(g, small_work).source, "#pragma omp parallel"));
    cpu::CpuTarget big_work;
    big_work.parallel_threshold = 1024;
    EXPECT_TRUE(contains(cpu::generate_module(g, big_work).source, "#pragma omp parallel for"));
}

// Many kernels are split into translation units for parallel compiles: each
// part has the prologue and every kernel is in exactly one part; a few
// kernels stay one unit.
TEST(Codegen, ManyKernelsAreSplitIntoPartsCompiledInParallel) {
    ir::Graph g;
    int x = g.add_input("x", {1, 4, 8, 8}, DType::Float32);
    for (int k = 0; k < 20; ++k)  // distinct constants: 20 distinct kernels (concat keeps them apart)
        x = g.add_node(Op::Concat, {g.add_node(Op::Mul, {x, g.add_constant(1.0 + k, DType::Float32)}, {}, "")},
                       attrs({{"axis", std::int64_t{1}}}), "");
    g.set_outputs({x});
    sol::passes::run_pipeline(g);
    cpu::CpuTarget target;
    target.compile_units = 2;
    const auto module = cpu::generate_module(g, target);
    ASSERT_EQ(module.units.size(), 2u);
    int in_parts = 0;
    for (const std::string& unit : module.units) {
        EXPECT_TRUE(contains(unit, cpu::kKernelPrologue));
        in_parts += occurrences(unit, "extern \"C\" void sol_");
    }
    EXPECT_EQ(in_parts, module.unique_kernels);
    EXPECT_EQ(occurrences(module.source, "extern \"C\" void sol_"), module.unique_kernels);

    target.compile_units = 1;
    EXPECT_TRUE(cpu::generate_module(g, target).units.empty()) << "one core: one unit";
}

}  // namespace
