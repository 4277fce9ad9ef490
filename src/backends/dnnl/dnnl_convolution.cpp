#include "sol/backends/dnnl/dnnl_convolution.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "dnnl_post_ops.h"
#include "sol/error.h"
#include "sol/log.h"

namespace sol::backends::dnnl {
namespace {

namespace dn = ::dnnl;
using tag = dn::memory::format_tag;
using dt = dn::memory::data_type;

dn::engine& engine() {
    static dn::engine instance(dn::engine::kind::cpu, 0);
    return instance;
}

dn::memory::dims dims_of(const ir::Shape& shape) { return dn::memory::dims(shape.begin(), shape.end()); }

dn::memory::desc desc_of(const ir::Tensor& t) { return dn::memory::desc(dims_of(t.shape), dt::f32, format_of(t)); }

// oneDNN wants grouped weights as [G, O/G, I/G, KH, KW].
dn::memory::dims weight_dims(const ir::Node& conv, const ir::Shape& w) {
    const std::int64_t groups = conv.attrs.get_int("groups", 1);
    if (groups == 1) return dims_of(w);
    return {groups, w[0] / groups, w[1], w[2], w[3]};
}

struct Plan {
    dn::convolution_forward::primitive_desc primitive;
    PostOps post;
    // The graph's layouts of input and output; the primitive's own differ
    // when oneDNN runs the requested mix only by its reference code.
    dn::memory::desc graph_src, graph_dst;
};

// The primitive descriptor for a cluster; throws sol::Error with the reason.
Plan plan_convolution(const ir::Graph& graph, const std::vector<int>& cluster) {
    const ir::Node& conv = graph.nodes()[cluster.front()];
    if (conv.op != ir::Op::Conv2d) throw Error("not a convolution");
    // Weights are reordered once per weight update, so they must come from
    // parameters, not from a per-call input.
    const ir::Tensor& weight = graph.tensor(conv.inputs[1]);
    if (weight.kind == ir::TensorKind::Input ||
        (weight.kind == ir::TensorKind::Intermediate && !graph.parameter_derived()[weight.id]))
        throw Error("the weights change per call (they are not parameters)");
    PostOps post = chain_post_ops(graph, cluster, 4);  // the destination is NCHW, as the graph's
    const ir::Tensor& result = graph.tensor(graph.nodes()[cluster.back()].output);
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
    auto primitive_for = [&](const dn::memory::desc& src, const dn::memory::desc& dst) {
        auto description = has_bias ? dn::convolution_forward::desc(dn::prop_kind::forward_inference,
                                                                    dn::algorithm::convolution_direct, src, weights,
                                                                    bias, dst, strides, dilates, pads, pads)
                                    : dn::convolution_forward::desc(dn::prop_kind::forward_inference,
                                                                    dn::algorithm::convolution_direct, src, weights,
                                                                    dst, strides, dilates, pads, pads);
        try {
            return dn::convolution_forward::primitive_desc(description, attributes, engine());
        } catch (const dn::error& error) {
            throw Error(std::string("oneDNN rejected the convolution: ") + error.what());
        }
    };
    // The reference implementation is a plain loop nest, far slower than
    // generated code or a reorder.
    auto fast = [](const dn::convolution_forward::primitive_desc& primitive) {
        return std::string(primitive.impl_info_str()).rfind("ref", 0) != 0;
    };
    // First the graph's layouts; oneDNN's optimized kernels do not take every
    // mix of row-major and blocked operands (a blocked input with a
    // row-major output, say), so then the output, then both, in the layout
    // oneDNN picks, with a reorder on the way.
    const dn::memory::desc src = desc_of(graph.tensor(conv.inputs[0])), dst = desc_of(result);
    const dn::memory::desc any(dims_of(result.shape), dt::f32, tag::any);
    const dn::memory::desc any_src(dims_of(graph.tensor(conv.inputs[0]).shape), dt::f32, tag::any);
    std::string implementation;
    for (const auto& [try_src, try_dst] : {std::pair{src, dst}, std::pair{src, any}, std::pair{any_src, any}}) {
        auto primitive = primitive_for(try_src, try_dst);
        if (fast(primitive)) return {std::move(primitive), std::move(post), src, dst};
        implementation = primitive.impl_info_str();
    }
    throw Error("oneDNN has only its reference implementation (" + implementation + ") for this convolution");
}

class Convolution final : public LibraryKernel {
public:
    Convolution(const ir::Graph& graph, const std::vector<int>& cluster, const std::vector<int>& arguments)
        : plan_(plan_convolution(graph, cluster)), primitive_(plan_.primitive) {
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
        for (const auto& [index, tensor] : plan_.post.binary_inputs) binary_slots_.push_back({index, slot(tensor)});
        const auto& pd = plan_.primitive;
        if (plan_.post.sum_input >= 0) {
            sum_ = slot(plan_.post.sum_input);
            addend_desc_ = desc_of(graph.tensor(plan_.post.sum_input));
            if (addend_desc_ != pd.dst_desc())
                addend_to_dst_ = dn::reorder(dn::reorder::primitive_desc(engine(), addend_desc_, engine(), pd.dst_desc()));
        }
        if (plan_.graph_src != pd.src_desc())
            src_in_ = dn::reorder(dn::reorder::primitive_desc(engine(), plan_.graph_src, engine(), pd.src_desc()));
        if (plan_.graph_dst != pd.dst_desc())
            dst_out_ = dn::reorder(dn::reorder::primitive_desc(engine(), pd.dst_desc(), engine(), plan_.graph_dst));
        const ir::Shape& w = graph.tensor(conv.inputs[1]).shape;
        user_weights_ = dn::memory::desc(weight_dims(conv, w), dt::f32,
                                         conv.attrs.get_int("groups", 1) == 1 ? tag::oihw : tag::goihw);
        reordered_size_ = plan_.primitive.weights_desc().get_size();
        reordered_ = std::aligned_alloc(64, (reordered_size_ + 63) / 64 * 64);
        if (reordered_ == nullptr) throw Error("out of memory for reordered convolution weights");
        log::debug("oneDNN " + std::string(pd.impl_info_str()) + (src_in_ ? " (input reordered)" : "") +
                   (dst_out_ ? " (output reordered)" : "") + " for conv2d at " + conv.origin);
    }
    ~Convolution() override { std::free(reordered_); }

    // Weights into the primitive's blocked layout, once per weight update.
    void prepare(void* const* args) override {
        dn::memory source(user_weights_, engine(), args[weights_]);
        dn::memory target(plan_.primitive.weights_desc(), engine(), reordered_);
        dn::stream stream(engine());
        dn::reorder(source, target).execute(stream, source, target);
        stream.wait();
    }

    bool reads_only_in_prepare(std::size_t index) const override { return static_cast<int>(index) == weights_; }

    void run(void* const* args) override {
        const auto& pd = plan_.primitive;
        // Per thread, so concurrent calls never share them.
        thread_local std::vector<char> scratchpad, src_buffer, dst_buffer;
        scratchpad.resize(std::max<std::size_t>(pd.scratchpad_desc().get_size(), 1));
        dn::stream stream(engine());
        dn::memory src(plan_.graph_src, engine(), args[x_]);
        if (src_in_) {
            src_buffer.resize(pd.src_desc().get_size());
            dn::memory converted(pd.src_desc(), engine(), src_buffer.data());
            src_in_.execute(stream, src, converted);
            src = converted;
        }
        dn::memory out(plan_.graph_dst, engine(), args[out_]);
        dn::memory dst = out;
        if (dst_out_) {
            dst_buffer.resize(pd.dst_desc().get_size());
            dst = dn::memory(pd.dst_desc(), engine(), dst_buffer.data());
        }
        if (sum_ >= 0) {  // the addend of the sum post-op goes into the output first
            if (addend_to_dst_) {
                dn::memory addend(addend_desc_, engine(), args[sum_]);
                addend_to_dst_.execute(stream, addend, dst);
            } else if (dst.get_data_handle() != args[sum_]) {  // equal: computed in place
                std::memcpy(dst.get_data_handle(), args[sum_], pd.dst_desc().get_size());
            }
        }
        std::unordered_map<int, dn::memory> operands{
            {DNNL_ARG_SRC, src},
            {DNNL_ARG_WEIGHTS, dn::memory(pd.weights_desc(), engine(), reordered_)},
            {DNNL_ARG_DST, dst},
            {DNNL_ARG_SCRATCHPAD, dn::memory(pd.scratchpad_desc(), engine(), scratchpad.data())}};
        if (bias_ >= 0) operands.insert({DNNL_ARG_BIAS, dn::memory(pd.bias_desc(), engine(), args[bias_])});
        for (std::size_t i = 0; i < binary_slots_.size(); ++i) {
            const auto [index, slot] = binary_slots_[i];
            operands.insert({DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1,
                             dn::memory(plan_.post.binary_descs[i], engine(), args[slot])});
        }
        primitive_.execute(stream, operands);
        if (dst_out_) dst_out_.execute(stream, dst, out);
        stream.wait();
    }

private:
    Plan plan_;
    dn::convolution_forward primitive_;
    dn::memory::desc user_weights_;
    void* reordered_ = nullptr;
    std::size_t reordered_size_ = 0;
    int x_ = -1, weights_ = -1, bias_ = -1, out_ = -1, sum_ = -1;
    dn::memory::desc addend_desc_;  // the sum post-op's addend, in its own layout
    dn::reorder addend_to_dst_;     // set when that differs from the output's
    dn::reorder src_in_, dst_out_;  // set when the primitive's layouts differ from the graph's
    std::vector<std::pair<int, int>> binary_slots_;  // (post-op index, argument slot)
};

}  // namespace

bool supports_convolution(const ir::Graph& graph, const std::vector<int>& cluster, std::string& reason) {
    try {
        plan_convolution(graph, cluster);
        return true;
    } catch (const Error& error) {
        reason = error.what();
        return false;
    }
}

bool handles_channel_blocked(const ir::Graph& graph, const std::vector<int>& cluster, int tensor_id) {
    const ir::Node& conv = graph.nodes()[cluster.front()];
    return tensor_id != conv.inputs[1] && (conv.inputs.size() < 3 || tensor_id != conv.inputs[2]);
}

int in_place_input(const ir::Graph& graph, const std::vector<int>& cluster) {
    if (graph.nodes()[cluster.front()].op != ir::Op::Conv2d) return -1;
    return in_place_addend(graph, cluster, plan_convolution(graph, cluster).post.sum_input);
}

std::unique_ptr<LibraryKernel> make_convolution(const ir::Graph& graph, const std::vector<int>& cluster,
                                                const std::vector<int>& arguments) {
    return std::make_unique<Convolution>(graph, cluster, arguments);
}

}  // namespace sol::backends::dnnl
