#include "dnnl_post_ops.h"

#include <algorithm>
#include <cfloat>
#include <cstdlib>
#include <functional>
#include <new>
#include <numeric>
#include <string>

#include "sol/error.h"
#include "sol/support/page_memory.h"

namespace sol::backends::dnnl {

::dnnl::engine& engine() {
    static ::dnnl::engine instance(::dnnl::engine::kind::cpu, 0);
    return instance;
}

::dnnl::stream& thread_stream() {
    thread_local ::dnnl::stream stream(engine());
    return stream;
}

bool plannable(const std::function<void()>& plan, std::string& reason) {
    try {
        plan();
        return true;
    } catch (const Error& error) {
        reason = error.what();
        return false;
    }
}

namespace {

// Copies the framework's weights (`from` at `from_data`) into the layout a
// primitive wants (`to` at `to_data`).
void reorder_weights(const ::dnnl::memory::desc& from, void* from_data, const ::dnnl::memory::desc& to,
                     void* to_data) {
    ::dnnl::memory source(from, engine(), from_data), target(to, engine(), to_data);
    ::dnnl::stream& stream = thread_stream();
    ::dnnl::reorder(source, target).execute(stream, source, target);
    stream.wait();
}

}  // namespace

ReorderedWeights::ReorderedWeights(std::size_t bytes) : bytes_((std::max<std::size_t>(bytes, 1) + 63) / 64 * 64) {
    try {
        kept_ = bytes_ >= kPageMemoryThreshold ? map_pages(bytes_) : std::aligned_alloc(64, bytes_);
    } catch (const std::bad_alloc&) {
    }
    if (kept_ == nullptr) throw Error("out of memory for reordered weights (" + std::to_string(bytes) + " bytes)");
}

ReorderedWeights::~ReorderedWeights() { release(); }

void ReorderedWeights::reorder_in_run() { release(); }

void ReorderedWeights::release() {
    if (bytes_ >= kPageMemoryThreshold)
        unmap_pages(kept_, bytes_);
    else
        std::free(kept_);
    kept_ = nullptr;
}

void ReorderedWeights::prepare(const ::dnnl::memory::desc& from, void* data, const ::dnnl::memory::desc& to) const {
    if (kept_ != nullptr) reorder_weights(from, data, to, kept_);
}

void* ReorderedWeights::for_run(const ::dnnl::memory::desc& from, void* data, const ::dnnl::memory::desc& to,
                                void* scratch) const {
    if (kept_ != nullptr) return kept_;
    reorder_weights(from, data, to, scratch);
    return scratch;
}

namespace {

namespace dn = ::dnnl;
using tag = dn::memory::format_tag;
using dt = dn::memory::data_type;

tag row_major(std::size_t rank) {
    switch (rank) {
        case 1: return tag::a;
        case 2: return tag::ab;
        case 3: return tag::abc;
        case 4: return tag::abcd;
        case 5: return tag::abcde;
        case 6: return tag::abcdef;
        default: throw Error("oneDNN is not used for rank-" + std::to_string(rank) + " tensors");
    }
}

float finite(double value) { return static_cast<float>(std::clamp(value, -double(FLT_MAX), double(FLT_MAX))); }

// How the destination (the chain's `result` seen with `rank` dims, see
// chain_post_ops) sees a side operand of shape `shape`: leading ones where it
// broadcasts. Flattened dims must all broadcast or all be full, since one
// oneDNN dim cannot broadcast over part of itself.
dn::memory::dims operand_dims(const ir::Shape& shape, const ir::Shape& result, std::size_t rank) {
    ir::Shape padded = shape;
    while (padded.size() < result.size()) padded.insert(padded.begin(), 1);
    const std::size_t folded = result.size() - rank + 1;  // leading dims flattened into the first
    const auto fold_end = padded.begin() + static_cast<std::ptrdiff_t>(folded);
    dn::memory::dims dims;
    if (std::all_of(padded.begin(), fold_end, [](std::int64_t extent) { return extent == 1; }))
        dims.push_back(1);
    else if (std::equal(padded.begin(), fold_end, result.begin()))
        dims.push_back(std::accumulate(padded.begin(), fold_end, std::int64_t{1}, std::multiplies<>()));
    else
        throw Error("side operand " + ir::to_string(shape) + " broadcasts over part of the flattened dims of " +
                    ir::to_string(result));
    dims.insert(dims.end(), fold_end, padded.end());
    return dims;
}

// Appends the post-ops computing `node` from the running value; false (with
// the reason) when oneDNN has no such post-op.
bool append_post_op(const ir::Graph& graph, const ir::Node& node, int running, std::size_t rank, bool channels_last,
                    PostOps& post, std::string& reason) {
    auto eltwise = [&post](dn::algorithm algorithm, float alpha = 0.f, float beta = 0.f) {
        post.ops.append_eltwise(1.f, algorithm, alpha, beta);
        return true;
    };
    switch (node.op) {
        case ir::Op::Relu: return eltwise(dn::algorithm::eltwise_relu);
        case ir::Op::Clamp:
            return eltwise(dn::algorithm::eltwise_clip_v2, finite(node.attrs.get_float("min")),
                           finite(node.attrs.get_float("max")));
        case ir::Op::Sigmoid: return eltwise(dn::algorithm::eltwise_logistic);
        case ir::Op::Tanh: return eltwise(dn::algorithm::eltwise_tanh);
        case ir::Op::Gelu:
            return eltwise(node.attrs.get_int("approximate", 0) ? dn::algorithm::eltwise_gelu_tanh
                                                                : dn::algorithm::eltwise_gelu_erf);
        case ir::Op::Silu: return eltwise(dn::algorithm::eltwise_swish, 1.f);
        case ir::Op::Hardswish: return eltwise(dn::algorithm::eltwise_hardswish);
        case ir::Op::Hardsigmoid:  // clamp(x/6 + 1/2, 0, 1)
            eltwise(dn::algorithm::eltwise_linear, 1.f / 6.f, 0.5f);
            return eltwise(dn::algorithm::eltwise_clip_v2, 0.f, 1.f);
        case ir::Op::Neg: return eltwise(dn::algorithm::eltwise_linear, -1.f, 0.f);
        case ir::Op::Add:
        case ir::Op::Sub:
        case ir::Op::Mul:
        case ir::Op::Div: break;
        default: reason = "oneDNN has no post-op for '" + std::string(ir::name(node.op)) + "'"; return false;
    }
    const bool running_first = node.inputs[0] == running;
    const ir::Tensor& other = graph.tensor(node.inputs[running_first ? 1 : 0]);
    if (other.kind == ir::TensorKind::Constant) {  // alpha * x + beta
        const float c = static_cast<float>(other.value);
        switch (node.op) {
            case ir::Op::Add: return eltwise(dn::algorithm::eltwise_linear, 1.f, c);
            case ir::Op::Sub:
                return running_first ? eltwise(dn::algorithm::eltwise_linear, 1.f, -c)
                                     : eltwise(dn::algorithm::eltwise_linear, -1.f, c);
            case ir::Op::Mul: return eltwise(dn::algorithm::eltwise_linear, c, 0.f);
            default:
                // x / c as x * (1/c) would round differently from PyTorch.
                reason = "division by a constant is left to generated code";
                return false;
        }
    }
    if (!running_first && node.op == ir::Op::Div) {
        reason = "c / x has no oneDNN post-op";
        return false;
    }
    const ir::Shape& result = graph.tensor(running).shape;
    // A full-size addend (a residual connection) goes through the `sum`
    // post-op: oneDNN's binary post-op with a full-size operand falls back to
    // a slow implementation. The output is pre-filled with the addend.
    if (node.op == ir::Op::Add && other.shape == result && post.sum_input < 0 && post.ops.len() == 0) {
        post.sum_input = other.id;
        post.ops.append_sum(1.f);
        return true;
    }
    dn::memory::desc desc;
    if (other.channel_block != 0) {  // rank 4, as the destination's own dims
        if (rank != result.size()) {
            reason = "a channel-blocked side operand for a flattened destination";
            return false;
        }
        desc = dn::memory::desc(dn::memory::dims(other.shape.begin(), other.shape.end()), dt::f32,
                                format_of(other, channels_last));
    } else {
        try {
            desc = dn::memory::desc(operand_dims(other.shape, result, rank), dt::f32, row_major(rank));
        } catch (const Error& error) {
            reason = error.what();
            return false;
        }
    }
    const dn::algorithm algorithm = node.op == ir::Op::Add   ? dn::algorithm::binary_add
                                    : node.op == ir::Op::Sub ? dn::algorithm::binary_sub
                                    : node.op == ir::Op::Mul ? dn::algorithm::binary_mul
                                                             : dn::algorithm::binary_div;
    post.binary_inputs.push_back({post.ops.len(), other.id});
    post.binary_descs.push_back(desc);
    post.ops.append_binary(algorithm, desc);
    // side - x = -(x - side); add and mul commute.
    if (!running_first && node.op == ir::Op::Sub) eltwise(dn::algorithm::eltwise_linear, -1.f, 0.f);
    return true;
}

// oneDNN has nChw4c, nChw8c and nChw16c: other one-block tensors are only NHWC.
bool blocked_format_exists(int block) { return block == 4 || block == 8 || block == 16; }

}  // namespace

tag format_of(const ir::Tensor& tensor, bool channels_last) {
    const bool one_block = tensor.shape.size() == 4 && tensor.channel_block == tensor.shape[1];
    if (one_block && (channels_last || !blocked_format_exists(tensor.channel_block))) return tag::nhwc;
    switch (tensor.channel_block) {
        case 0: return row_major(tensor.shape.size());
        case 4: return tag::nChw4c;
        case 8: return tag::nChw8c;
        case 16: return tag::nChw16c;
        default:
            throw Error("internal: no oneDNN format for channels blocked by " + std::to_string(tensor.channel_block));
    }
}

bool is_channels_last(const ir::Graph& graph, const std::vector<int>& cluster) {
    auto nhwc = [&](int id) {
        const ir::Tensor& t = graph.tensor(id);
        return t.shape.size() == 4 && t.channel_block == t.shape[1] && !blocked_format_exists(t.channel_block);
    };
    for (int index : cluster) {
        const ir::Node& node = graph.nodes()[index];
        if (nhwc(node.output) || std::any_of(node.inputs.begin(), node.inputs.end(), nhwc)) return true;
    }
    return false;
}

PostOps chain_post_ops(const ir::Graph& graph, const std::vector<int>& cluster, std::size_t destination_rank) {
    const ir::Node& anchor = graph.nodes()[cluster.front()];
    const std::size_t result_rank = graph.tensor(anchor.output).shape.size();
    if (destination_rank < 1 || destination_rank > result_rank)
        throw Error("internal: a rank-" + std::to_string(destination_rank) + " destination for a rank-" +
                    std::to_string(result_rank) + " result");
    PostOps post;
    const bool channels_last = is_channels_last(graph, cluster);
    int running = anchor.output;
    for (std::size_t k = 1; k < cluster.size(); ++k) {
        const ir::Node& node = graph.nodes()[cluster[k]];
        std::string reason;
        if (!append_post_op(graph, node, running, destination_rank, channels_last, post, reason)) throw Error(reason);
        running = node.output;
    }
    if (graph.tensor(running).shape != graph.tensor(anchor.output).shape)
        throw Error("the fused chain broadcasts the output");
    return post;
}

int in_place_addend(const ir::Graph& graph, const std::vector<int>& cluster, int addend) {
    if (addend < 0) return -1;
    // Writing over a tensor the kernel also reads elsewhere (x + conv(x))
    // would change its input while it runs.
    int reads = 0;
    for (int index : cluster)
        for (int input : graph.nodes()[index].inputs) reads += input == addend;
    if (reads != 1) return -1;
    const ir::Tensor& result = graph.tensor(graph.nodes()[cluster.back()].output);
    return graph.tensor(addend).channel_block == result.channel_block ? addend : -1;
}

}  // namespace sol::backends::dnnl
