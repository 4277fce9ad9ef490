// Explicit vector code in generated kernels (src/codegen/cpu/vector_code.cpp):
// an elementwise chain over channel-blocked tensors computes one register of
// lanes per pixel where every op has a register form and every operand is
// one register; anything else keeps the scalar lane loop. The numbers of
// both paths are checked end to end in compiled_layout_test and
// fuse_depth_first_test; here the choice itself.
#include <gtest/gtest.h>

#include "sol/codegen/cpu/generate_module.h"
#include "sol/passes/fuse_elementwise.h"
#include "test_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace cpu = sol::codegen::cpu;

// The source of the kernel whose description starts with `chain`.
std::string kernel_source(const std::string& module, const std::string& chain) {
    const std::size_t start = module.find("\n// " + chain + " -> ");
    if (start == std::string::npos) return "";
    return module.substr(start, module.find("\n}\n", start) - start);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// x [1, 32, 8, 8] -> e1 = relu(x), read twice so it is its own kernel, then
//   mul(e1, p) + q -> relu       (register forms, per-channel parameters)
//   sigmoid(mul(e1, p))          (sigmoid has no register form)
//   mul(e1, r) -> relu           (r [1, 1, 8, 8]: not one register per pixel)
// with the intermediates blocked by `block`.
std::string generated(int block) {
    ir::Graph g;
    const int x = g.add_input("x", {1, 32, 8, 8}, DType::Float32);
    const int p = g.add_parameter("p", {1, 32, 1, 1}, DType::Float32);
    const int q = g.add_parameter("q", {32, 1, 1}, DType::Float32);
    const int r = g.add_parameter("r", {1, 1, 8, 8}, DType::Float32);
    const int e1 = g.add_node(Op::Relu, {x}, {}, "e1");
    const int e2 = g.add_node(Op::Relu, {g.add_node(Op::Add, {g.add_node(Op::Mul, {e1, p}, {}, "m"), q}, {}, "a")}, {}, "r2");
    const int e3 = g.add_node(Op::Sigmoid, {g.add_node(Op::Mul, {e1, p}, {}, "m3")}, {}, "s");
    const int e4 = g.add_node(Op::Relu, {g.add_node(Op::Mul, {e1, r}, {}, "m4")}, {}, "r4");
    auto pool = [&g](int t) {
        return g.add_node(Op::AdaptiveAvgPool2d, {t}, attrs({{"output_size", Ints{1, 1}}}), "gap");
    };
    g.set_outputs({pool(e2), pool(e3), pool(e4)});
    sol::passes::fuse_elementwise(g);
    for (int t : {e1, e2, e3, e4}) g.set_channel_block(t, block);
    return cpu::generate_module(g, cpu::CpuTarget{}).source;
}

TEST(VectorCode, BlockedChainWithRegisterFormsComputesOneRegisterPerPixel) {
    for (const auto& [block, type] : {std::pair{16, "sol_f32x16"}, std::pair{8, "sol_f32x8"}}) {
        const std::string kernel = kernel_source(generated(block), "mul + add + relu");
        ASSERT_FALSE(kernel.empty());
        EXPECT_TRUE(contains(kernel, std::string(type) + " v = ")) << kernel;
        // Both parameters are loaded as a register of the block's channels.
        EXPECT_TRUE(contains(kernel, "sol_vload<" + std::string(type) + ">(a1 + (c0 * " + std::to_string(block) + "))"))
            << kernel;
        EXPECT_TRUE(contains(kernel, "sol_vstore(out + ")) << kernel;
        EXPECT_FALSE(contains(kernel, "#pragma omp simd")) << kernel;
    }
}

TEST(VectorCode, OpsOrOperandsWithoutRegisterFormsKeepTheLaneLoop) {
    const std::string module = generated(16);
    for (const char* chain : {"mul + sigmoid", "mul + relu", "relu"}) {
        const std::string kernel = kernel_source(module, chain);
        ASSERT_FALSE(kernel.empty()) << chain;
        EXPECT_TRUE(contains(kernel, "#pragma omp simd")) << kernel;
        EXPECT_FALSE(contains(kernel, "sol_vload")) << kernel;
    }
}

TEST(VectorCode, RowMajorTensorsGetNoRegisterCode) {
    const std::string kernel = kernel_source(generated(0), "mul + add + relu");
    ASSERT_FALSE(kernel.empty());
    EXPECT_FALSE(contains(kernel, "sol_vload")) << kernel;
}

}  // namespace
