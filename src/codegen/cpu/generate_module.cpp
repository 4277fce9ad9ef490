#include "sol/codegen/cpu/generate_module.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "kernel_builder.h"
#include "prologue_text.h"
#include "sol/error.h"
#include "sol/support/content_hash.h"

namespace sol::codegen::cpu {
namespace {

// Node indices per cluster in graph order (a depth-first prologue, the anchor,
// its chain; see anchor_position), in the order kernels must run (a cluster
// runs where its last node stood).
std::vector<std::vector<int>> clusters_in_execution_order(const ir::Graph& graph) {
    std::map<int, std::vector<int>> members;
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        const int cluster = graph.nodes()[i].cluster;
        if (cluster < 0)
            throw Error("internal: node " + std::to_string(i) + " has no kernel; run fuse_elementwise first");
        members[cluster].push_back(static_cast<int>(i));
    }
    std::vector<std::vector<int>> ordered;
    for (auto& [cluster, nodes] : members) ordered.push_back(std::move(nodes));
    std::sort(ordered.begin(), ordered.end(),
              [](const auto& a, const auto& b) { return a.back() < b.back(); });
    return ordered;
}

void emit(KernelBuilder& builder) {
    const ir::Op op = builder.anchor().op;
    if (op == ir::Op::Conv2d) {
        if (is_blocked_depthwise_conv(builder)) return emit_blocked_depthwise_conv(builder);
        if (is_blocked_pointwise_conv(builder)) return emit_blocked_pointwise_conv(builder);
        if (is_few_input_channels_conv(builder)) return emit_few_input_channels_conv(builder);
        if (is_pointwise_conv(builder)) return emit_pointwise_conv(builder);
        if (is_depthwise_conv_on_planes(builder)) return emit_depthwise_conv(builder);
        return emit_conv2d(builder);
    }
    if (ir::is_convolution_gradient(op) || op == ir::Op::MaxPool2dBackward || op == ir::Op::AvgPool2dBackward ||
        op == ir::Op::AdaptiveAvgPool2dBackward)
        return emit_gradient(builder);
    if (op == ir::Op::Linear) return emit_linear(builder);
    if (ir::has_trait(op, ir::Pooling)) return emit_pooling(builder);
    if (ir::has_trait(op, ir::Movement)) return emit_movement(builder);
    if (op == ir::Op::Softmax || op == ir::Op::LogSoftmax) return emit_softmax(builder);
    if (op == ir::Op::Mean || op == ir::Op::Sum) return emit_reduction(builder);
    if (ir::has_trait(op, ir::Elementwise)) return emit_elementwise(builder);
    throw Error("internal: no CPU emitter for op '" + std::string(ir::name(op)) + "'");
}

std::string origins(const ir::Graph& graph, const std::vector<int>& cluster) {
    std::set<std::string> seen;
    std::string text;
    for (int index : cluster) {
        const std::string& origin = graph.nodes()[index].origin;
        if (!origin.empty() && seen.insert(origin).second) text += (text.empty() ? "" : "; ") + origin;
    }
    return text;
}

}  // namespace

bool handles_channel_blocked(const ir::Graph& graph, const std::vector<int>& cluster, int tensor_id) {
    (void)tensor_id;
    const ir::Node& anchor = graph.nodes()[cluster.front()];
    // Elementwise and pooling kernels walk blocks as they lie in memory;
    // a channel concat copies whole blocks.
    if (ir::has_trait(anchor.op, ir::Elementwise) || ir::has_trait(anchor.op, ir::Pooling)) return true;
    return anchor.op == ir::Op::Concat && anchor.attrs.get_int("axis") == 1 &&
           graph.tensor(anchor.output).shape.size() == 4;
}

GeneratedModule generate_module(const ir::Graph& graph, const CpuTarget& target, const BackendSelector& select) {
    GeneratedModule module;
    const std::vector<bool> derived = graph.parameter_derived();
    std::map<std::string, std::string> functions;  // name -> source, each once
    std::ostringstream plan;
    for (const std::vector<int>& cluster : clusters_in_execution_order(graph)) {
        const int result = graph.nodes()[cluster.back()].output;
        // Weight-only clusters run once per update: generated code is enough
        // (a user's kernel has no generated form).
        const bool custom = ir::is_custom(graph.nodes()[cluster.front()].op);
        const std::string backend = select && (!derived[result] || custom) ? select(graph, cluster) : "";
        // The name is the hash of the body: identical layers share one kernel.
        auto emit_function = [&](KernelBuilder& builder) {
            emit(builder);
            const std::string name = "sol_" + content_hash(builder.function_source("KERNEL")).substr(0, 16);
            functions.emplace(name, builder.function_source(name));
            return name;
        };
        if (!backend.empty()) {
            KernelCall call;
            call.backend = backend;
            call.nodes = cluster;
            call.arguments = library_call_arguments(graph, cluster);
            call.parameter_stage = derived[result];
            call.description = std::string(ir::name(graph.nodes()[cluster.front()].op));
            const std::string where = origins(graph, cluster);
            if (!where.empty()) call.description += "  # " + where;
            // Generated code reads the anchor's operands row-major, except
            // depthwise, few-channel 1x1 and few-input-channel convolutions',
            // which it also reads channel-blocked.
            // The generated convolution gradients are reference loop nests,
            // never worth timing against the library.
            // A cluster of two convolutions (a depthwise one fused into the 1x1
            // before it, passes/merge_depthwise_into_pointwise) has no
            // generated form.
            const ir::Node& anchor = graph.nodes()[cluster.front()];
            const bool one_contraction = std::count_if(cluster.begin(), cluster.end(), [&](int n) {
                return ir::has_trait(graph.nodes()[n].op, ir::Contraction);
            }) == 1;
            if (one_contraction && !ir::is_convolution_gradient(anchor.op) && !custom) {
                KernelBuilder builder(graph, cluster, target);
                const bool row_major = std::all_of(anchor.inputs.begin(), anchor.inputs.end(),
                                                   [&](int id) { return graph.tensor(id).channel_block == 0; });
                if (row_major || is_blocked_depthwise_conv(builder) || is_blocked_pointwise_conv(builder) ||
                    is_few_input_channels_conv(builder)) {
                    call.alternative = emit_function(builder);
                    call.alternative_arguments = builder.arguments();
                }
            }
            plan << "//   [" << backend << "] " << call.description
                 << (call.alternative.empty() ? "" : " (or " + call.alternative + ")") << "\n";
            module.calls.push_back(std::move(call));
            continue;
        }
        // The layout pass blocks only what the kernel handles; anything else
        // would be read with the wrong addressing.
        for (int input : graph.nodes()[cluster.front()].inputs)
            if (graph.tensor(input).channel_block != 0 && !handles_channel_blocked(graph, cluster, input))
                throw Error("internal: " + std::string(ir::name(graph.nodes()[cluster.front()].op)) +
                            " kernel given a channel-blocked operand");
        KernelBuilder builder(graph, cluster, target);
        const std::string name = emit_function(builder);
        if (builder.has_prologue() || (builder.anchor().op == ir::Op::Concat && builder.has_epilogue()))
            ++module.depth_first_calls;
        KernelCall call;
        call.function = name;
        call.nodes = cluster;
        call.arguments = builder.arguments();
        call.may_overwrite = builder.in_place_operand();
        call.parameter_stage = derived[result];
        call.description = builder.description();
        const std::string where = origins(graph, cluster);
        if (!where.empty()) call.description += "  # " + where;
        plan << "//   " << (call.parameter_stage ? "[weights] " : "") << name << ": " << call.description << "\n";
        module.calls.push_back(std::move(call));
    }
    std::ostringstream source;
    source << "// Generated by SOL for the host CPU. Kernels in execution order:\n" << plan.str() << "\n"
           << kKernelPrologue << "\n";
    for (const auto& [name, text] : functions) source << text << "\n";
    module.source = source.str();
    module.unique_kernels = static_cast<int>(functions.size());
    // A few kernels compile faster as one unit than the prologue parsed
    // several times; many are spread over the cores, largest first onto the
    // lightest unit.
    constexpr std::size_t kKernelsPerUnit = 8;
    const std::size_t unit_count =
        std::min<std::size_t>(std::max(target.compile_units, 1), functions.size() / kKernelsPerUnit);
    if (unit_count >= 2) {
        std::vector<std::pair<std::size_t, std::string>> by_size;
        for (const auto& [name, text] : functions) by_size.push_back({text.size(), name});
        std::sort(by_size.begin(), by_size.end(), std::greater<>());
        std::vector<std::string> bodies(unit_count);
        std::vector<std::size_t> sizes(unit_count, 0);
        for (const auto& [size, name] : by_size) {
            const std::size_t lightest = std::min_element(sizes.begin(), sizes.end()) - sizes.begin();
            bodies[lightest] += functions.at(name) + "\n";
            sizes[lightest] += size;
        }
        for (std::size_t k = 0; k < unit_count; ++k)
            module.units.push_back("// Part " + std::to_string(k + 1) + " of " + std::to_string(unit_count) +
                                   " of a SOL module; the whole module is the .cpp of the same name.\n" +
                                   kKernelPrologue + "\n" + bodies[k]);
    }
    return module;
}

}  // namespace sol::codegen::cpu
