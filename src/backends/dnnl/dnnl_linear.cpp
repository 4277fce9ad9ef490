#include "sol/backends/dnnl/dnnl_linear.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "dnnl_post_ops.h"
#include "sol/error.h"
#include "sol/log.h"

namespace sol::backends::dnnl {
namespace {

namespace dn = ::dnnl;
using tag = dn::memory::format_tag;
using dt = dn::memory::data_type;

// The framework's [N, K] weights, row-major ("oi": output features first).
dn::memory::desc user_weights_of(const ir::Graph& graph, const ir::Node& linear) {
    const ir::Shape& w = graph.tensor(linear.inputs[1]).shape;
    return dn::memory::desc({w[0], w[1]}, dt::f32, tag::oi);
}

struct Plan {
    dn::inner_product_forward::primitive_desc primitive;
    PostOps post;
    // x as [M, K] and the result as [M, N], both row-major: the graph's own
    // layouts, so the primitive reads and writes the graph's buffers.
    dn::memory::desc src, dst;
};

// The primitive descriptor for a cluster; throws sol::Error with the reason.
Plan plan_linear(const ir::Graph& graph, const std::vector<int>& cluster) {
    const ir::Node& linear = graph.nodes()[cluster.front()];
    if (linear.op != ir::Op::Linear) throw Error("not a linear layer");
    for (int index : cluster)
        for (int input : graph.nodes()[index].inputs) {
            const ir::Tensor& tensor = graph.tensor(input);
            // Constants enter the post-ops as float attributes.
            if (tensor.kind != ir::TensorKind::Constant && tensor.dtype != ir::DType::Float32)
                throw Error("oneDNN's inner product is used for float32 only, not " +
                            std::string(ir::name(tensor.dtype)));
        }
    const ir::Tensor& x = graph.tensor(linear.inputs[0]);
    // A vector-matrix product is left to generated code, which streams the
    // weights just as well.
    if (x.shape.size() < 2) throw Error("a rank-1 input is left to generated code");
    // Weights are reordered once per weight update, so they must come from
    // parameters, not from a per-call input.
    const ir::Tensor& weight = graph.tensor(linear.inputs[1]);
    if (weight.kind == ir::TensorKind::Input ||
        (weight.kind == ir::TensorKind::Intermediate && !graph.parameter_derived()[weight.id]))
        throw Error("the weights change per call (they are not parameters)");
    PostOps post = chain_post_ops(graph, cluster, 2);  // the destination is [M, N]
    const ir::Tensor& result = graph.tensor(graph.nodes()[cluster.back()].output);
    // Channel-blocked tensors are rank 4 images; flattening one to [M, K]
    // would mix channels into rows. The layout pass never gives one to a
    // linear layer (handles_channel_blocked is false), this checks it.
    if (x.channel_block != 0 || result.channel_block != 0 ||
        (post.sum_input >= 0 && graph.tensor(post.sum_input).channel_block != 0))
        throw Error("internal: a channel-blocked operand for an inner product");
    const std::int64_t K = x.shape.back(), N = weight.shape[0];
    const std::int64_t M = ir::element_count(x.shape) / K;
    const dn::memory::desc src({M, K}, dt::f32, tag::nc), dst({M, N}, dt::f32, tag::nc);
    const dn::memory::desc weights({N, K}, dt::f32, tag::any);  // reordered once per update
    const dn::memory::desc bias({N}, dt::f32, tag::x);
    dn::primitive_attr attributes;
    attributes.set_post_ops(post.ops);
    // Each call brings its own scratchpad, so concurrent calls never share one.
    attributes.set_scratchpad_mode(dn::scratchpad_mode::user);
    const auto description =
        linear.inputs.size() == 3
            ? dn::inner_product_forward::desc(dn::prop_kind::forward_inference, src, weights, bias, dst)
            : dn::inner_product_forward::desc(dn::prop_kind::forward_inference, src, weights, dst);
    dn::inner_product_forward::primitive_desc primitive;
    try {
        primitive = dn::inner_product_forward::primitive_desc(description, attributes, engine());
    } catch (const dn::error& error) {
        throw Error(std::string("oneDNN rejected the inner product: ") + error.what());
    }
    // The reference implementation is a plain loop nest, far slower than
    // generated code.
    const std::string implementation = primitive.impl_info_str();
    if (implementation.rfind("ref", 0) == 0)
        throw Error("oneDNN has only its reference implementation (" + implementation + ") for this inner product");
    return {std::move(primitive), std::move(post), src, dst};
}

class InnerProduct final : public LibraryKernel {
public:
    InnerProduct(const ir::Graph& graph, const std::vector<int>& cluster, const std::vector<int>& arguments)
        : plan_(plan_linear(graph, cluster)), primitive_(plan_.primitive) {
        const ir::Node& linear = graph.nodes()[cluster.front()];
        auto slot = [&arguments](int tensor) {
            auto found = std::find(arguments.begin(), arguments.end(), tensor);
            if (found == arguments.end()) throw Error("internal: an inner product operand is not an argument");
            return static_cast<int>(found - arguments.begin());
        };
        x_ = slot(linear.inputs[0]);
        weights_ = slot(linear.inputs[1]);
        bias_ = linear.inputs.size() == 3 ? slot(linear.inputs[2]) : -1;
        out_ = static_cast<int>(arguments.size()) - 1;
        for (const auto& [index, tensor] : plan_.post.binary_inputs) binary_slots_.push_back({index, slot(tensor)});
        if (plan_.post.sum_input >= 0) sum_ = slot(plan_.post.sum_input);
        user_weights_ = user_weights_of(graph, linear);
        add_forward_operands(operands_, plan_.primitive, bias_ >= 0, plan_.post);
        log::debug("oneDNN " + std::string(plan_.primitive.impl_info_str()) + " for linear at " + linear.origin);
        layout_ = plan_workspace();
    }
    InnerProduct(const InnerProduct&) = delete;
    InnerProduct& operator=(const InnerProduct&) = delete;

    // Weights into the primitive's blocked layout, once per weight update.
    void prepare(void* const* args) override {
        weights_memory_.prepare(user_weights_, args[weights_], plan_.primitive.weights_desc());
    }

    void reorder_weights_in_run() override {
        weights_memory_.reorder_in_run();
        layout_ = plan_workspace();
    }

    bool reads_only_in_prepare(std::size_t index) const override {
        return weights_memory_.kept() && static_cast<int>(index) == weights_;
    }

    std::size_t workspace_bytes() const override { return layout_.total(); }
    std::size_t kept_bytes() const override { return weights_memory_.kept_bytes(); }

    void run(void* const* args) override {
        const auto& pd = plan_.primitive;
        // Scratch memory is part of the call's workspace: concurrent calls never share it.
        const WorkspaceLayout& layout = layout_;
        void* const workspace = args[out_ + 1];
        void* const scratchpad = layout.at(workspace, Scratch::Pad);
        dn::stream& stream = thread_stream();
        void* const weights =
            weights_memory_.for_run(user_weights_, args[weights_], pd.weights_desc(), layout.at(workspace, Scratch::Weights));
        // The addend of the sum post-op goes into the output first (unless
        // the output is computed in its buffer: same pointer).
        if (sum_ >= 0 && args[out_] != args[sum_]) std::memcpy(args[out_], args[sum_], plan_.dst.get_size());
        operands_.execute(primitive_, stream,
                          forward_pointers(args[x_], weights, args[out_], scratchpad, args, bias_, binary_slots_).all());
    }

private:
    // The scratchpad, and the weights when they are reordered in run().
    WorkspaceLayout plan_workspace() const {
        WorkspaceLayout layout;
        // Never empty: run() reads the pointer.
        layout.add(Scratch::Pad, std::max<std::size_t>(plan_.primitive.scratchpad_desc().get_size(), 1));
        if (!weights_memory_.kept()) layout.add(Scratch::Weights, plan_.primitive.weights_desc().get_size());
        return layout;
    }

    Plan plan_;
    dn::inner_product_forward primitive_;
    Operands operands_;  // the primitive's, kept between calls
    dn::memory::desc user_weights_;
    ReorderedWeights weights_memory_{plan_.primitive.weights_desc().get_size()};
    // The scratch layout of the current variant and weight mode, kept current
    // by whatever changes them (run() only reads it).
    WorkspaceLayout layout_;
    int x_ = -1, weights_ = -1, bias_ = -1, out_ = -1, sum_ = -1;
    std::vector<std::pair<int, int>> binary_slots_;  // (post-op index, argument slot)
};

}  // namespace

bool supports_linear(const ir::Graph& graph, const std::vector<int>& cluster, std::string& reason) {
    return plannable([&] { plan_linear(graph, cluster); }, reason);
}

int linear_in_place_input(const ir::Graph& graph, const std::vector<int>& cluster) {
    if (graph.nodes()[cluster.front()].op != ir::Op::Linear) return -1;
    return in_place_addend(graph, cluster, plan_linear(graph, cluster).post.sum_input);
}

std::unique_ptr<LibraryKernel> make_linear(const ir::Graph& graph, const std::vector<int>& cluster,
                                           const std::vector<int>& arguments) {
    return std::make_unique<InnerProduct>(graph, cluster, arguments);
}

}  // namespace sol::backends::dnnl
