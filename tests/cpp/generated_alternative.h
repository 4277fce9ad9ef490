// Running one library call's generated alternative directly: generated for a
// chosen target (AVX2's 8-lane registers, say, on an AVX-512 host), compiled
// for this host and called on buffers laid out by hand. For the emitters of
// channel-blocked kernels, whose code differs per register width.
#pragma once

#include <map>
#include <vector>

#include "sol/codegen/cpu/generate_module.h"
#include "sol/jit/compiler.h"
#include "sol/jit/shared_library.h"
#include "sol/passes/fuse_elementwise.h"
#include "test_helpers.h"

namespace soltest {

// Row-major NCHW -> NCHW{block}c (NHWC when `block` is every channel).
inline std::vector<float> to_blocked(const std::vector<float>& nchw, std::int64_t n, std::int64_t c, std::int64_t h,
                                     std::int64_t w, std::int64_t block) {
    std::vector<float> blocked(nchw.size());
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t ch = 0; ch < c; ++ch)
            for (std::int64_t y = 0; y < h; ++y)
                for (std::int64_t x = 0; x < w; ++x)
                    blocked[(((i * (c / block) + ch / block) * h + y) * w + x) * block + ch % block] =
                        nchw[((i * c + ch) * h + y) * w + x];
    return blocked;
}

// NCHW{block}c -> row-major NCHW.
inline std::vector<float> from_blocked(const std::vector<float>& blocked, std::int64_t n, std::int64_t c,
                                       std::int64_t h, std::int64_t w, std::int64_t block) {
    std::vector<float> nchw(blocked.size());
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t ch = 0; ch < c; ++ch)
            for (std::int64_t y = 0; y < h; ++y)
                for (std::int64_t x = 0; x < w; ++x)
                    nchw[((i * c + ch) * h + y) * w + x] =
                        blocked[(((i * (c / block) + ch / block) * h + y) * w + x) * block + ch % block];
    return nchw;
}

// The module of `graph` (clusters assigned) for `target`, its convolutions
// given to a library, so that they get their generated alternatives.
inline sol::codegen::GeneratedModule module_with_library_convolutions(const ir::Graph& graph,
                                                                      const sol::codegen::cpu::CpuTarget& target) {
    return sol::codegen::cpu::generate_module(graph, target, [](const ir::Graph& g, const std::vector<int>& cluster) {
        return std::string(g.nodes()[cluster.front()].op == ir::Op::Conv2d ? "dnn" : "");
    });
}

// in -> neg -> conv2d(w, b) -> ReLU -> global average pooling, the tensors
// between the negation and the pooling NHWC (graph inputs and outputs are
// row-major): what the 8-lane tests of the NHWC convolution emitters generate.
struct NhwcConvGraph {
    ir::Graph graph;
    int x = -1, w = -1, b = -1, conv = -1, y = -1;  // conv input, weights, bias, conv, ReLU
};

inline NhwcConvGraph nhwc_conv_relu_graph(std::int64_t n, std::int64_t ic, std::int64_t h, std::int64_t w,
                                          std::int64_t oc, std::int64_t kernel, const ir::Attributes& conv_attributes) {
    NhwcConvGraph made;
    ir::Graph& g = made.graph;
    made.x = g.add_node(ir::Op::Neg, {g.add_input("in", {n, ic, h, w}, ir::DType::Float32)}, {}, "");
    made.w = g.add_parameter("w", {oc, ic, kernel, kernel}, ir::DType::Float32);
    made.b = g.add_parameter("b", {oc}, ir::DType::Float32);
    made.conv = g.add_node(ir::Op::Conv2d, {made.x, made.w, made.b}, conv_attributes, "conv");
    made.y = g.add_node(ir::Op::Relu, {made.conv}, {}, "relu");
    g.set_outputs({g.add_node(ir::Op::AdaptiveAvgPool2d, {made.y}, attrs({{"output_size", Ints{1, 1}}}), "")});
    sol::passes::fuse_elementwise(g);
    g.set_channel_block(made.x, ic);
    for (int t : {made.conv, made.y}) g.set_channel_block(t, oc);
    return made;
}

// Compiles `module` for this host and runs the generated alternative of its
// call `call` on `buffers` (tensor id -> memory).
inline void run_alternative(const sol::codegen::GeneratedModule& module, std::size_t call,
                            const std::map<int, void*>& buffers) {
    const sol::codegen::KernelCall& library_call = module.calls.at(call);
    std::vector<void*> args;
    for (int id : library_call.alternative_arguments) args.push_back(buffers.at(id));
    const auto path = sol::jit::build_shared_library(sol::jit::find_host_compiler(), module.source, "test");
    sol::jit::SharedLibrary loaded(path);
    reinterpret_cast<void (*)(void* const*)>(loaded.symbol(library_call.alternative))(args.data());
}

}  // namespace soltest
