#include "sol/backends/dnnl/dnnl_convolution_backward.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdlib>
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

// oneDNN wants grouped weights as [G, O/G, I/G, KH, KW].
dn::memory::dims weight_dims(std::int64_t groups, const ir::Shape& w) {
    if (groups == 1) return dims_of(w);
    return {groups, w[0] / groups, w[1], w[2], w[3]};
}

// The primitive of one gradient node, on the layouts oneDNN picks (tag::any),
// from the forward convolution it differentiates (oneDNN's hint).
struct Plan {
    bool data = true;  // conv2d_backward_data (else backward_weight)
    dn::convolution_backward_data::primitive_desc data_pd;
    dn::convolution_backward_weights::primitive_desc weights_pd;
    dn::memory::desc user_x, user_w, user_dy;  // the graph's row-major layouts
};

Plan plan_for(const ir::Graph& graph, const std::vector<int>& cluster) {
    if (cluster.size() != 1) throw Error("a fused chain follows the gradient");
    const ir::Node& node = graph.nodes()[cluster.front()];
    Plan plan;
    if (!ir::is_convolution_gradient(node.op)) throw Error("not a convolution gradient");
    plan.data = node.op == ir::Op::Conv2dBackwardData;
    for (int id : {node.inputs[0], node.inputs[1], node.output})
        if (graph.tensor(id).channel_block != 0) throw Error("channel-blocked operands");
    const ir::Shape& dy = graph.tensor(node.inputs[0]).shape;
    const ir::Shape x = plan.data ? graph.tensor(node.output).shape : graph.tensor(node.inputs[1]).shape;
    const ir::Shape w = plan.data ? graph.tensor(node.inputs[1]).shape : graph.tensor(node.output).shape;
    const std::int64_t groups = node.attrs.get_int("groups", 1);
    const auto stride = node.attrs.get_ints("stride", {1, 1});
    const auto padding = node.attrs.get_ints("padding", {0, 0});
    const auto dilation = node.attrs.get_ints("dilation", {1, 1});
    const dn::memory::dims strides(stride.begin(), stride.end()), pads(padding.begin(), padding.end());
    const dn::memory::dims dilates{dilation[0] - 1, dilation[1] - 1};  // oneDNN counts gaps
    const dn::memory::desc any_x(dims_of(x), dt::f32, tag::any), any_dy(dims_of(dy), dt::f32, tag::any);
    const dn::memory::desc any_w(weight_dims(groups, w), dt::f32, tag::any);
    plan.user_x = dn::memory::desc(dims_of(x), dt::f32, tag::nchw);
    plan.user_dy = dn::memory::desc(dims_of(dy), dt::f32, tag::nchw);
    plan.user_w = dn::memory::desc(weight_dims(groups, w), dt::f32, groups == 1 ? tag::oihw : tag::goihw);
    try {
        const dn::convolution_forward::primitive_desc hint(
            dn::convolution_forward::desc(dn::prop_kind::forward_training, dn::algorithm::convolution_direct, any_x,
                                          any_w, any_dy, strides, dilates, pads, pads),
            engine());
        dn::primitive_attr attributes;
        attributes.set_scratchpad_mode(dn::scratchpad_mode::user);  // per call, so calls never share one
        std::string implementation;
        if (plan.data) {
            plan.data_pd = dn::convolution_backward_data::primitive_desc(
                dn::convolution_backward_data::desc(dn::algorithm::convolution_direct, any_x, any_w, any_dy, strides,
                                                    dilates, pads, pads),
                attributes, engine(), hint);
            implementation = plan.data_pd.impl_info_str();
        } else {
            plan.weights_pd = dn::convolution_backward_weights::primitive_desc(
                dn::convolution_backward_weights::desc(dn::algorithm::convolution_direct, any_x, any_w, any_dy,
                                                       strides, dilates, pads, pads),
                attributes, engine(), hint);
            implementation = plan.weights_pd.impl_info_str();
        }
        // The reference implementation is a plain loop nest like SOL's own.
        if (implementation.rfind("ref", 0) == 0) throw Error("oneDNN has only its reference implementation");
    } catch (const dn::error& error) {
        throw Error(std::string("oneDNN rejected the convolution gradient: ") + error.what());
    }
    return plan;
}

// A reorder between two layouts, made once; none where they agree.
dn::reorder reorder_between(const dn::memory::desc& from, const dn::memory::desc& to) {
    return from == to ? dn::reorder() : dn::reorder(dn::reorder::primitive_desc(engine(), from, engine(), to));
}

// `data` in layout `from`, as the primitive reads it: itself, or converted by
// `reorder` into `buffer` (the kernel's workspace) in layout `to`.
dn::memory converted(const dn::reorder& reorder, const dn::memory::desc& from, void* data, const dn::memory::desc& to,
                     void* buffer) {
    dn::memory user(from, engine(), data);
    if (!reorder) return user;
    dn::memory target(to, engine(), buffer);
    reorder.execute(thread_stream(), user, target);
    return target;
}

class ConvolutionBackward final : public LibraryKernel {
public:
    ConvolutionBackward(const ir::Graph& graph, const std::vector<int>& cluster) : plan_(plan_for(graph, cluster)) {
        if (plan_.data) {
            const auto& pd = plan_.data_pd;
            primitive_ = dn::convolution_backward_data(pd);
            dy_in_ = reorder_between(plan_.user_dy, pd.diff_dst_desc());
            out_back_ = reorder_between(pd.diff_src_desc(), plan_.user_x);
            weights_memory_ = std::make_unique<ReorderedWeights>(pd.weights_desc().get_size());
        } else {
            const auto& pd = plan_.weights_pd;
            primitive_ = dn::convolution_backward_weights(pd);
            dy_in_ = reorder_between(plan_.user_dy, pd.diff_dst_desc());
            x_in_ = reorder_between(plan_.user_x, pd.src_desc());
            out_back_ = reorder_between(pd.diff_weights_desc(), plan_.user_w);
        }
        log::debug("oneDNN " + std::string(plan_.data ? plan_.data_pd.impl_info_str() : plan_.weights_pd.impl_info_str()) +
                   " for " + std::string(ir::name(graph.nodes()[cluster.front()].op)) + " at " +
                   graph.nodes()[cluster.front()].origin);
        layout_ = plan_workspace();
    }
    ConvolutionBackward(const ConvolutionBackward&) = delete;
    ConvolutionBackward& operator=(const ConvolutionBackward&) = delete;

    // The data gradient's weights into the primitive's layout, once per update.
    void prepare(void* const* args) override {
        if (weights_memory_) weights_memory_->prepare(plan_.user_w, args[1], plan_.data_pd.weights_desc());
    }
    void reorder_weights_in_run() override {
        if (weights_memory_) weights_memory_->reorder_in_run();
        layout_ = plan_workspace();
    }
    bool reads_only_in_prepare(std::size_t index) const override {
        return weights_memory_ && weights_memory_->kept() && index == 1;
    }

    std::size_t workspace_bytes() const override { return layout_.total(); }
    std::size_t kept_bytes() const override { return weights_memory_ ? weights_memory_->kept_bytes() : 0; }

    void run(void* const* args) override {
        dn::stream& stream = thread_stream();
        // Scratch memory is part of the call's workspace: concurrent calls never share it.
        const WorkspaceLayout& layout = layout_;
        void* const workspace = args[3];
        void* const scratchpad = layout.at(workspace, Scratch::Pad);
        void* const reordered_out = layout.at(workspace, Scratch::Destination);
        if (plan_.data) {
            const auto& pd = plan_.data_pd;
            void* const weights =
                weights_memory_->for_run(plan_.user_w, args[1], pd.weights_desc(), layout.at(workspace, Scratch::Weights));
            const dn::memory dy =
                converted(dy_in_, plan_.user_dy, args[0], pd.diff_dst_desc(), layout.at(workspace, Scratch::Source));
            finish(pd.diff_src_desc(), plan_.user_x, args[2], reordered_out, [&](const dn::memory& out) {
                primitive_.execute(stream, {{DNNL_ARG_DIFF_DST, dy},
                                            {DNNL_ARG_WEIGHTS, dn::memory(pd.weights_desc(), engine(), weights)},
                                            {DNNL_ARG_DIFF_SRC, out},
                                            {DNNL_ARG_SCRATCHPAD, dn::memory(pd.scratchpad_desc(), engine(), scratchpad)}});
            });
        } else {
            const auto& pd = plan_.weights_pd;
            const dn::memory dy =
                converted(dy_in_, plan_.user_dy, args[0], pd.diff_dst_desc(), layout.at(workspace, Scratch::Source));
            const dn::memory x =
                converted(x_in_, plan_.user_x, args[1], pd.src_desc(), layout.at(workspace, Scratch::Second));
            finish(pd.diff_weights_desc(), plan_.user_w, args[2], reordered_out, [&](const dn::memory& out) {
                primitive_.execute(stream, {{DNNL_ARG_SRC, x},
                                            {DNNL_ARG_DIFF_DST, dy},
                                            {DNNL_ARG_DIFF_WEIGHTS, out},
                                            {DNNL_ARG_SCRATCHPAD, dn::memory(pd.scratchpad_desc(), engine(), scratchpad)}});
            });
        }
        stream.wait();
    }

private:
    // Computes into the caller's output when the layouts agree, else into a
    // buffer in the primitive's layout that out_back_ reorders there.
    template <typename Compute>
    void finish(const dn::memory::desc& produced, const dn::memory::desc& user, void* data, void* buffer,
                Compute&& compute) const {
        dn::memory out(user, engine(), data);
        if (!out_back_) return compute(out);
        dn::memory result(produced, engine(), buffer);
        compute(result);
        out_back_.execute(thread_stream(), result, out);
    }

    // The scratchpad, the operands reordered into the primitive's layouts
    // and its result before it is reordered back, the weights when they are
    // reordered in run().
    WorkspaceLayout plan_workspace() const {
        WorkspaceLayout layout;
        if (plan_.data) {
            const auto& pd = plan_.data_pd;
            // Never empty: run() reads the pointer.
            layout.add(Scratch::Pad, std::max<std::size_t>(pd.scratchpad_desc().get_size(), 1));
            if (dy_in_) layout.add(Scratch::Source, pd.diff_dst_desc().get_size());
            if (out_back_) layout.add(Scratch::Destination, pd.diff_src_desc().get_size());
            if (!weights_memory_->kept()) layout.add(Scratch::Weights, pd.weights_desc().get_size());
        } else {
            const auto& pd = plan_.weights_pd;
            // Never empty: run() reads the pointer.
            layout.add(Scratch::Pad, std::max<std::size_t>(pd.scratchpad_desc().get_size(), 1));
            if (dy_in_) layout.add(Scratch::Source, pd.diff_dst_desc().get_size());
            if (x_in_) layout.add(Scratch::Second, pd.src_desc().get_size());
            if (out_back_) layout.add(Scratch::Destination, pd.diff_weights_desc().get_size());
        }
        return layout;
    }

    Plan plan_;
    dn::primitive primitive_;
    dn::reorder dy_in_, x_in_, out_back_;  // between the graph's layouts and the primitive's, where they differ
    std::unique_ptr<ReorderedWeights> weights_memory_;  // the data gradient's weights only
    // The scratch layout of the current variant and weight mode, kept current
    // by whatever changes them (run() only reads it).
    WorkspaceLayout layout_;
};

}  // namespace

bool supports_convolution_backward(const ir::Graph& graph, const std::vector<int>& cluster, std::string& reason) {
    return plannable([&] { plan_for(graph, cluster); }, reason);
}

std::unique_ptr<LibraryKernel> make_convolution_backward(const ir::Graph& graph, const std::vector<int>& cluster,
                                                         const std::vector<int>& arguments) {
    if (arguments.size() != 3) throw Error("internal: a convolution gradient call takes dy, one operand and its output");
    return std::make_unique<ConvolutionBackward>(graph, cluster);
}

}  // namespace sol::backends::dnnl
