#include "sol/backends/dnnl/dnnl_convolution.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dnnl_post_ops.h"
#include "sol/error.h"
#include "sol/log.h"

namespace sol::backends::dnnl {
namespace {

namespace dn = ::dnnl;
using tag = dn::memory::format_tag;
using dt = dn::memory::data_type;

dn::memory::dims dims_of(const ir::Shape& shape) { return dn::memory::dims(shape.begin(), shape.end()); }

dn::memory::desc desc_of(const ir::Tensor& t, bool channels_last) {
    return dn::memory::desc(dims_of(t.shape), dt::f32, format_of(t, channels_last));
}

// oneDNN wants grouped weights as [G, O/G, I/G, KH, KW].
dn::memory::dims weight_dims(const ir::Node& conv, const ir::Shape& w) {
    const std::int64_t groups = conv.attrs.get_int("groups", 1);
    if (groups == 1) return dims_of(w);
    return {groups, w[0] / groups, w[1], w[2], w[3]};
}

// SOL_WINOGRAD=off (or 0) leaves Winograd out: for comparisons, or for
// results that round as the direct sum does.
bool winograd_allowed() {
    const char* text = std::getenv("SOL_WINOGRAD");
    return text == nullptr || (std::string(text) != "off" && std::string(text) != "0");
}

// The depthwise convolution merged behind the anchor (a 1x1 convolution) by
// passes/merge_depthwise_into_pointwise: the cluster's first Conv2d after the
// anchor, or -1.
int merged_depthwise(const ir::Graph& graph, const std::vector<int>& cluster) {
    for (std::size_t k = 1; k < cluster.size(); ++k)
        if (graph.nodes()[cluster[k]].op == ir::Op::Conv2d) return static_cast<int>(k);
    return -1;
}

void expect_parameter_weights(const ir::Graph& graph, const ir::Node& conv) {
    // Weights are reordered once per weight update, so they must come from
    // parameters, not from a per-call input.
    const ir::Tensor& weight = graph.tensor(conv.inputs[1]);
    if (weight.kind == ir::TensorKind::Input ||
        (weight.kind == ir::TensorKind::Intermediate && !graph.parameter_derived()[weight.id]))
        throw Error("the weights change per call (they are not parameters)");
}

// Post-ops of a chain that must be elementwise only: oneDNN computes the
// depthwise post-op's input row by row, with no room for side operands.
PostOps elementwise_post_ops(const ir::Graph& graph, const std::vector<int>& chain) {
    PostOps post = chain_post_ops(graph, chain, 4);
    if (!post.binary_inputs.empty() || post.sum_input >= 0)
        throw Error("a fused depthwise convolution takes elementwise chains without side operands");
    return post;
}

// The post-ops of a cluster [1x1 conv, chain..., depthwise conv, chain...]:
// the first chain, oneDNN's "dw" post-op (the depthwise convolution computed
// from rows of the 1x1 result while they are in cache), the second chain.
// Throws sol::Error naming what oneDNN's fused kernels do not take.
PostOps depthwise_post_ops(const ir::Graph& graph, const std::vector<int>& cluster, int at) {
    const ir::Node& pointwise = graph.nodes()[cluster.front()];
    const ir::Node& depthwise = graph.nodes()[cluster[static_cast<std::size_t>(at)]];
    const ir::Shape& w1 = graph.tensor(pointwise.inputs[1]).shape;
    const ir::Shape& w2 = graph.tensor(depthwise.inputs[1]).shape;
    auto pair_is = [](const ir::Node& node, const char* key, std::int64_t value, std::int64_t fallback) {
        return node.attrs.get_ints(key, {fallback, fallback}) == std::vector<std::int64_t>{value, value};
    };
    if (w1[2] != 1 || w1[3] != 1 || !pair_is(pointwise, "stride", 1, 1) || !pair_is(pointwise, "padding", 0, 0) ||
        pointwise.attrs.get_int("groups", 1) != 1)
        throw Error("a depthwise convolution fuses behind a 1x1, stride-1 convolution only");
    const std::int64_t stride = depthwise.attrs.get_ints("stride", {1, 1})[0];
    if (depthwise.attrs.get_int("groups", 1) != w1[0] || w2 != ir::Shape{w1[0], 1, 3, 3} ||
        !pair_is(depthwise, "padding", 1, 0) || !pair_is(depthwise, "dilation", 1, 1) ||
        !pair_is(depthwise, "stride", stride, 1) || (stride != 1 && stride != 2))
        throw Error("oneDNN fuses 3x3 depthwise convolutions with padding 1 and stride 1 or 2 only");
    // On NHWC tensors oneDNN 2.6 accepts the pair into its fused kernel
    // (jit_1x1) but computes wrong results: relative L2 error about 1 against
    // the two convolutions run apart, on the 2-core AVX-512 host. On channel
    // blocks (nChw16c, and nChw8c on AVX2) it matches them exactly.
    if (is_channels_last(graph, cluster))
        throw Error("oneDNN's fused depthwise kernel computes wrong results on NHWC tensors");
    expect_parameter_weights(graph, depthwise);
    const auto split = cluster.begin() + at;
    PostOps post = elementwise_post_ops(graph, std::vector<int>(cluster.begin(), split));
    post.ops.append_dw(dt::f32, depthwise.inputs.size() == 3 ? dt::f32 : dt::undef, dt::f32, 3, stride, 1,
                       0, {});  // no output scales (they are for integer types)
    const PostOps after = elementwise_post_ops(graph, std::vector<int>(split, cluster.end()));
    for (int k = 0; k < after.ops.len(); ++k) {
        float scale = 0, alpha = 0, beta = 0;
        dn::algorithm algorithm;
        after.ops.get_params_eltwise(k, scale, algorithm, alpha, beta);
        post.ops.append_eltwise(scale, algorithm, alpha, beta);
    }
    return post;
}

struct Plan {
    dn::convolution_forward::primitive_desc primitive;
    PostOps post;
    // The graph's layouts of input and output; the primitive's own differ
    // when oneDNN runs the requested mix only by its reference code.
    dn::memory::desc graph_src, graph_dst;
};

// The ways oneDNN can run a cluster, best guess first: its own kernels on
// the graph's layouts, and (when that differs) on the layouts oneDNN
// prefers, with reorders on the way in and out. Throws sol::Error with the
// reason when there is none but the reference implementation.
std::vector<Plan> plan_variants(const ir::Graph& graph, const std::vector<int>& cluster) {
    const ir::Node& conv = graph.nodes()[cluster.front()];
    if (conv.op != ir::Op::Conv2d) throw Error("not a convolution");
    expect_parameter_weights(graph, conv);
    const int depthwise = merged_depthwise(graph, cluster);
    // The destination is NCHW, as the graph's.
    PostOps post = depthwise < 0 ? chain_post_ops(graph, cluster, 4) : depthwise_post_ops(graph, cluster, depthwise);
    const ir::Tensor& result = graph.tensor(graph.nodes()[cluster.back()].output);
    // The primitive is described by its convolution's output, as the graph
    // lays out the chain's result; with a fused depthwise convolution, that is
    // the depthwise convolution's input, and the primitive's destination is
    // its output (the result).
    const ir::Tensor& convolved =
        depthwise < 0 ? result : graph.tensor(graph.nodes()[cluster[static_cast<std::size_t>(depthwise)]].inputs[0]);
    const ir::Shape& w = graph.tensor(conv.inputs[1]).shape;
    const auto stride = conv.attrs.get_ints("stride", {1, 1});
    const auto padding = conv.attrs.get_ints("padding", {0, 0});
    const auto dilation = conv.attrs.get_ints("dilation", {1, 1});
    const dn::memory::desc weights(weight_dims(conv, w), dt::f32, tag::any);  // reordered once per update
    const dn::memory::desc bias({w[0]}, dt::f32, tag::x);
    const dn::memory::dims strides(stride.begin(), stride.end()), pads(padding.begin(), padding.end());
    const dn::memory::dims dilates{dilation[0] - 1, dilation[1] - 1};  // oneDNN counts gaps
    const bool has_bias = conv.inputs.size() == 3;
    dn::primitive_attr attributes;
    attributes.set_post_ops(post.ops);
    // Each call brings its own scratchpad, so concurrent calls never share one.
    attributes.set_scratchpad_mode(dn::scratchpad_mode::user);
    auto primitive_for = [&](const dn::memory::desc& src, const dn::memory::desc& dst,
                             dn::algorithm algorithm = dn::algorithm::convolution_direct) {
        auto description = has_bias ? dn::convolution_forward::desc(dn::prop_kind::forward_inference, algorithm, src,
                                                                    weights, bias, dst, strides, dilates, pads, pads)
                                    : dn::convolution_forward::desc(dn::prop_kind::forward_inference, algorithm, src,
                                                                    weights, dst, strides, dilates, pads, pads);
        try {
            return dn::convolution_forward::primitive_desc(description, attributes, engine());
        } catch (const dn::error& error) {
            throw Error(std::string("oneDNN rejected the convolution: ") + error.what());
        }
    };
    // The reference implementation is a plain loop nest, far slower than
    // generated code or a reorder; "ref_fused_convolution" (a depthwise
    // post-op where oneDNN has no fused kernel) runs the two convolutions
    // one after the other through a buffer, which gains nothing.
    auto fast = [](const dn::convolution_forward::primitive_desc& primitive) {
        return std::string(primitive.impl_info_str()).rfind("ref", 0) != 0;
    };
    // First the graph's layouts; oneDNN's optimized kernels do not take every
    // mix of row-major and blocked operands (a blocked input with a
    // row-major output, say), so then the output in the layout oneDNN picks.
    // On row-major operands oneDNN often has only its GEMM-based kernels,
    // slower than reordering into its blocked layout and back: both ways are
    // offered, and the autotuner times them.
    const bool channels_last = is_channels_last(graph, cluster);
    const dn::memory::desc src = desc_of(graph.tensor(conv.inputs[0]), channels_last),
                           dst = desc_of(result, channels_last), convolved_dst = desc_of(convolved, channels_last);
    const dn::memory::desc any(dims_of(convolved.shape), dt::f32, tag::any);
    const dn::memory::desc any_src(dims_of(graph.tensor(conv.inputs[0]).shape), dt::f32, tag::any);
    std::vector<Plan> variants;
    std::string implementation;
    for (const auto& [try_src, try_dst] : {std::pair{src, convolved_dst}, std::pair{src, any}}) {
        auto primitive = primitive_for(try_src, try_dst);
        implementation = primitive.impl_info_str();
        if (fast(primitive)) {
            variants.push_back({std::move(primitive), post, src, dst});
            break;
        }
    }
    auto preferred = primitive_for(any_src, any);
    const bool differs = variants.empty() || preferred.src_desc() != variants.front().primitive.src_desc() ||
                         preferred.dst_desc() != variants.front().primitive.dst_desc();
    if (fast(preferred) && differs) variants.push_back({std::move(preferred), post, src, dst});
    // A row-major input (the network's image) into a channels-last output:
    // oneDNN's NHWC kernels after a reorder of the input can beat both.
    if (channels_last && graph.tensor(conv.inputs[0]).channel_block == 0 && depthwise < 0) {
        const dn::memory::desc nhwc_src(dims_of(graph.tensor(conv.inputs[0]).shape), dt::f32, tag::nhwc);
        auto reordered = primitive_for(nhwc_src, dst);
        if (fast(reordered)) variants.push_back({std::move(reordered), post, src, dst});
    }
    if (variants.empty())
        throw Error("oneDNN has only its reference implementation (" + implementation + ") for this convolution");
    // Winograd: a 3x3 stride-1 convolution as a product of transformed 4x4
    // (or 2x2) output tiles, 2-3x fewer multiplications. Its rounding differs
    // from the direct sum's (about 1e-6 relative per layer against 1e-7), so it
    // is only offered, never the default: the autotuner keeps it where it is
    // faster, autotuning=False stays direct. oneDNN has it for AVX-512 only,
    // and refuses other shapes itself; asking only for these saves the try.
    const bool winograd_shape = w[2] == 3 && w[3] == 3 && stride == std::vector<std::int64_t>{1, 1} &&
                                dilation == std::vector<std::int64_t>{1, 1} && conv.attrs.get_int("groups", 1) == 1;
    if (winograd_shape && winograd_allowed()) {
        try {
            auto winograd = primitive_for(any_src, any, dn::algorithm::convolution_winograd);
            variants.push_back({std::move(winograd), post, src, dst});
        } catch (const Error&) {  // not on this CPU, or not with this post-op chain
        }
    }
    return variants;
}

class Convolution final : public LibraryKernel {
public:
    Convolution(const ir::Graph& graph, const std::vector<int>& cluster, const std::vector<int>& arguments) {
        const ir::Node& conv = graph.nodes()[cluster.front()];
        auto slot = [&arguments](int tensor) {
            auto found = std::find(arguments.begin(), arguments.end(), tensor);
            if (found == arguments.end()) throw Error("internal: a convolution operand is not an argument");
            return static_cast<int>(found - arguments.begin());
        };
        x_ = slot(conv.inputs[0]);
        weights_ = slot(conv.inputs[1]);
        bias_ = conv.inputs.size() == 3 ? slot(conv.inputs[2]) : -1;
        out_ = static_cast<int>(arguments.size()) - 1;
        const int depthwise_at = merged_depthwise(graph, cluster);
        const ir::Node* depthwise = depthwise_at < 0 ? nullptr : &graph.nodes()[cluster[depthwise_at]];
        if (depthwise != nullptr) {
            depthwise_weights_ = slot(depthwise->inputs[1]);
            depthwise_bias_ = depthwise->inputs.size() == 3 ? slot(depthwise->inputs[2]) : -1;
            const ir::Shape& w = graph.tensor(depthwise->inputs[1]).shape;
            user_depthwise_weights_ = dn::memory::desc({w[0], 1, 1, w[2], w[3]}, dt::f32, tag::goihw);
        }
        std::size_t reordered_size = 0, reordered_depthwise_size = 0;
        const bool channels_last = is_channels_last(graph, cluster);
        for (Plan& plan : plan_variants(graph, cluster)) {
            Variant variant;
            variant.plan = std::move(plan);
            const auto& pd = variant.plan.primitive;
            variant.primitive = dn::convolution_forward(pd);
            add_forward_operands(*variant.operands, pd, conv.inputs.size() == 3, variant.plan.post);
            if (depthwise != nullptr) {
                variant.depthwise_weights = pd.query_md(dn::query::exec_arg_md, DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS);
                variant.operands->add(DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS, variant.depthwise_weights);
                if (depthwise_bias_ >= 0)
                    variant.operands->add(DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS,
                                          pd.query_md(dn::query::exec_arg_md, DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS));
                reordered_depthwise_size = std::max(reordered_depthwise_size, variant.depthwise_weights.get_size());
            }
            if (variant.plan.post.sum_input >= 0) {
                const dn::memory::desc addend = desc_of(graph.tensor(variant.plan.post.sum_input), channels_last);
                if (addend != pd.dst_desc())
                    variant.addend_to_dst = dn::reorder(dn::reorder::primitive_desc(engine(), addend, engine(), pd.dst_desc()));
            }
            if (variant.plan.graph_src != pd.src_desc())
                variant.src_in = dn::reorder(dn::reorder::primitive_desc(engine(), variant.plan.graph_src, engine(), pd.src_desc()));
            if (variant.plan.graph_dst != pd.dst_desc())
                variant.dst_out = dn::reorder(dn::reorder::primitive_desc(engine(), pd.dst_desc(), engine(), variant.plan.graph_dst));
            reordered_size = std::max(reordered_size, pd.weights_desc().get_size());
            variant.name = std::string(pd.impl_info_str()) + (variant.src_in ? " (input reordered)" : "") +
                           (variant.dst_out ? " (output reordered)" : "");
            log::debug("oneDNN " + variant.name + " for conv2d at " + conv.origin +
                       (depthwise != nullptr ? " with the depthwise conv2d at " + depthwise->origin : "") +
                       (variants_.empty() ? "" : " (alternative)"));
            variants_.push_back(std::move(variant));
        }
        const Plan& plan = variants_.front().plan;  // the same chain in every variant
        for (const auto& [index, tensor] : plan.post.binary_inputs) binary_slots_.push_back({index, slot(tensor)});
        if (plan.post.sum_input >= 0) {
            sum_ = slot(plan.post.sum_input);
            addend_desc_ = desc_of(graph.tensor(plan.post.sum_input), channels_last);
        }
        const ir::Shape& w = graph.tensor(conv.inputs[1]).shape;
        user_weights_ = dn::memory::desc(weight_dims(conv, w), dt::f32,
                                         conv.attrs.get_int("groups", 1) == 1 ? tag::oihw : tag::goihw);
        weights_memory_ = std::make_unique<ReorderedWeights>(reordered_size);
        if (depthwise != nullptr) depthwise_memory_ = std::make_unique<ReorderedWeights>(reordered_depthwise_size);
        layout_ = plan_workspace();
    }
    Convolution(const Convolution&) = delete;
    Convolution& operator=(const Convolution&) = delete;

    int variant_count() const override { return static_cast<int>(variants_.size()); }
    void use_variant(int index) override {
        // A deployed library can run on a CPU with fewer variants (no
        // Winograd without AVX-512): the default then.
        current_ = index < variant_count() ? static_cast<std::size_t>(index) : 0;
        layout_ = plan_workspace();
    }
    std::string variant_name(int index) const override { return variants_.at(static_cast<std::size_t>(index)).name; }

    // Weights into the primitive's blocked layout, once per weight update.
    void prepare(void* const* args) override {
        weights_memory_->prepare(user_weights_, args[weights_], variants_[current_].plan.primitive.weights_desc());
        if (depthwise_memory_)
            depthwise_memory_->prepare(user_depthwise_weights_, args[depthwise_weights_],
                                       variants_[current_].depthwise_weights);
    }

    void reorder_weights_in_run() override {
        weights_memory_->reorder_in_run();
        if (depthwise_memory_) depthwise_memory_->reorder_in_run();
        layout_ = plan_workspace();
    }

    bool reads_only_in_prepare(std::size_t index) const override {
        const int slot = static_cast<int>(index);
        return (weights_memory_->kept() && slot == weights_) ||
               (depthwise_memory_ && depthwise_memory_->kept() && slot == depthwise_weights_);
    }

    std::size_t workspace_bytes() const override { return layout_.total(); }
    std::size_t kept_bytes() const override {
        return weights_memory_->kept_bytes() + (depthwise_memory_ ? depthwise_memory_->kept_bytes() : 0);
    }

    void run(void* const* args) override {
        const Variant& variant = variants_[current_];
        const auto& pd = variant.plan.primitive;
        // Scratch memory is part of the call's workspace: concurrent calls never share it.
        const WorkspaceLayout& layout = layout_;
        void* const workspace = args[out_ + 1];
        void* const scratchpad = layout.at(workspace, Scratch::Pad);
        dn::stream& stream = thread_stream();
        void* const weights =
            weights_memory_->for_run(user_weights_, args[weights_], pd.weights_desc(), layout.at(workspace, Scratch::Weights));
        void* src = args[x_];
        if (variant.src_in) {
            src = layout.at(workspace, Scratch::Source);
            dn::memory graph_src(variant.plan.graph_src, engine(), args[x_]), converted(pd.src_desc(), engine(), src);
            variant.src_in.execute(stream, graph_src, converted);
        }
        void* const dst = variant.dst_out ? layout.at(workspace, Scratch::Destination) : args[out_];
        if (sum_ >= 0) {  // the addend of the sum post-op goes into the output first
            if (variant.addend_to_dst) {
                dn::memory addend(addend_desc_, engine(), args[sum_]), target(pd.dst_desc(), engine(), dst);
                variant.addend_to_dst.execute(stream, addend, target);
            } else if (dst != args[sum_]) {  // equal: computed in place
                std::memcpy(dst, args[sum_], pd.dst_desc().get_size());
            }
        }
        CallPointers pointers = forward_pointers(src, weights, dst, scratchpad, args, bias_, binary_slots_);
        if (depthwise_memory_) {
            pointers.push(depthwise_memory_->for_run(user_depthwise_weights_, args[depthwise_weights_],
                                                     variant.depthwise_weights,
                                                     layout.at(workspace, Scratch::DepthwiseWeights)));
            if (depthwise_bias_ >= 0) pointers.push(args[depthwise_bias_]);
        }
        variant.operands->execute(variant.primitive, stream, pointers.all());
        if (variant.dst_out) {
            dn::memory result(pd.dst_desc(), engine(), dst), out(variant.plan.graph_dst, engine(), args[out_]);
            variant.dst_out.execute(stream, result, out);
        }
        stream.wait();
    }

private:
    // The current variant's scratchpad, reordered input and output, and the
    // weights when they are reordered in run().
    WorkspaceLayout plan_workspace() const {
        const Variant& variant = variants_[current_];
        const auto& pd = variant.plan.primitive;
        WorkspaceLayout layout;
        // Never empty: run() reads the pointer.
        layout.add(Scratch::Pad, std::max<std::size_t>(pd.scratchpad_desc().get_size(), 1));
        if (variant.src_in) layout.add(Scratch::Source, pd.src_desc().get_size());
        if (variant.dst_out) layout.add(Scratch::Destination, pd.dst_desc().get_size());
        if (!weights_memory_->kept()) layout.add(Scratch::Weights, pd.weights_desc().get_size());
        if (depthwise_memory_ && !depthwise_memory_->kept())
            layout.add(Scratch::DepthwiseWeights, variant.depthwise_weights.get_size());
        return layout;
    }

    // One way to run the convolution: a primitive and the reorders between
    // the graph's layouts and the primitive's.
    struct Variant {
        Plan plan;
        std::string name;  // oneDNN's implementation, and the reorders around it
        dn::convolution_forward primitive;
        dn::reorder addend_to_dst;  // the sum post-op's addend into the output's layout, where they differ
        dn::reorder src_in, dst_out;  // where the primitive's layouts differ from the graph's
        std::unique_ptr<Operands> operands = std::make_unique<Operands>();  // the primitive's, kept between calls
        dn::memory::desc depthwise_weights;  // the fused depthwise convolution's, in the primitive's layout
    };
    std::vector<Variant> variants_;
    std::size_t current_ = 0;
    // The scratch layout of the current variant and weight mode, kept current
    // by whatever changes them (run() only reads it).
    WorkspaceLayout layout_;
    dn::memory::desc user_weights_;
    std::unique_ptr<ReorderedWeights> weights_memory_;  // sized for every variant's weight layout
    // A fused depthwise convolution's weights (none: null, slots -1).
    dn::memory::desc user_depthwise_weights_;
    std::unique_ptr<ReorderedWeights> depthwise_memory_;
    int depthwise_weights_ = -1, depthwise_bias_ = -1;
    int x_ = -1, weights_ = -1, bias_ = -1, out_ = -1, sum_ = -1;
    dn::memory::desc addend_desc_;  // the sum post-op's addend, in its own layout
    std::vector<std::pair<int, int>> binary_slots_;  // (post-op index, argument slot)
};

}  // namespace

bool supports_convolution(const ir::Graph& graph, const std::vector<int>& cluster, std::string& reason) {
    return plannable([&] { plan_variants(graph, cluster); }, reason);
}

bool supports_fused_depthwise(const ir::Graph& graph, const std::vector<int>& merged, std::string& reason) {
    const int at = merged_depthwise(graph, merged);
    if (at < 0) {
        reason = "internal: no depthwise convolution in the cluster";
        return false;
    }
    // Measured on the 2-core AVX-512 host (oneDNN 2.6, channel blocks of 16,
    // caches flushed between calls as inside a network): fused, the stride-2
    // pairs of MobileNetV2 and MNASNet took 10-40% less time (batch 8, 16 ->
    // 96 channels at 112x112: 5.17 -> 3.19 ms); stride-1 pairs took as long or
    // up to 15% longer (96 -> 576 channels at 14x14: 1.16 -> 1.34 ms).
    if (graph.nodes()[merged[static_cast<std::size_t>(at)]].attrs.get_ints("stride", {1, 1})[0] != 2) {
        reason = "a stride-1 depthwise convolution gains nothing fused";
        return false;
    }
    return supports_convolution(graph, merged, reason);
}

bool handles_channel_blocked(const ir::Graph& graph, const std::vector<int>& cluster, int tensor_id) {
    const ir::Node& conv = graph.nodes()[cluster.front()];
    return tensor_id != conv.inputs[1] && (conv.inputs.size() < 3 || tensor_id != conv.inputs[2]);
}

int in_place_input(const ir::Graph& graph, const std::vector<int>& cluster) {
    if (graph.nodes()[cluster.front()].op != ir::Op::Conv2d) return -1;
    return in_place_addend(graph, cluster, plan_variants(graph, cluster).front().post.sum_input);
}

std::unique_ptr<LibraryKernel> make_convolution(const ir::Graph& graph, const std::vector<int>& cluster,
                                                const std::vector<int>& arguments) {
    return std::make_unique<Convolution>(graph, cluster, arguments);
}

}  // namespace sol::backends::dnnl
