// The fused elementwise chain behind a oneDNN primitive (a convolution, an
// inner product) as that primitive's post-ops, shared by the primitives so
// that they accept exactly the same chains. Internal to the dnn backend.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dnnl_operands.h"
#include "sol/ir/graph.h"

namespace sol::backends::dnnl {

// The CPU engine all primitives of the backend run on.
::dnnl::engine& engine();

// The calling thread's stream on that engine, created once per thread: a
// stream per kernel call costs microseconds, and a network makes hundreds.
::dnnl::stream& thread_stream();

// Whether `plan` (a primitive's planning, which throws sol::Error naming
// what oneDNN cannot run) succeeds; otherwise `reason` says why, for the
// device's "dnn not chosen" message.
bool plannable(const std::function<void()>& plan, std::string& reason);

// A kernel's per-call workspace (LibraryKernel::workspace_bytes): a
// 64-byte aligned region per use, in the block the runtime passes to run().
enum class Scratch { Pad, Source, Second, Destination, Weights, DepthwiseWeights, Count };
class WorkspaceLayout {
public:
    void add(Scratch use, std::size_t bytes) {
        offsets_[static_cast<int>(use)] = total_;
        total_ += (bytes + 63) / 64 * 64;
    }
    std::size_t total() const { return total_; }
    void* at(void* workspace, Scratch use) const { return static_cast<char*>(workspace) + offsets_[static_cast<int>(use)]; }

private:
    std::size_t offsets_[static_cast<int>(Scratch::Count)] = {};
    std::size_t total_ = 0;
};

// A primitive's weights in the layout it wants (`to`), from the framework's
// (`from`). Kept between calls and reordered in prepare(), once per weight
// update; or, after reorder_in_run() (weights that change before every
// call), reordered by each run into the kernel's workspace
// (Scratch::Weights), so no copy outlives the call.
class ReorderedWeights {
public:
    explicit ReorderedWeights(std::size_t bytes);  // the largest layout any variant wants
    ~ReorderedWeights();
    ReorderedWeights(const ReorderedWeights&) = delete;
    ReorderedWeights& operator=(const ReorderedWeights&) = delete;

    void reorder_in_run();
    bool kept() const { return kept_ != nullptr; }
    std::size_t kept_bytes() const { return kept() ? bytes_ : 0; }
    void prepare(const ::dnnl::memory::desc& from, void* data, const ::dnnl::memory::desc& to) const;
    // The weights for this run: the kept copy, or reordered into `scratch`.
    void* for_run(const ::dnnl::memory::desc& from, void* data, const ::dnnl::memory::desc& to, void* scratch) const;

private:
    void release();  // of the kept copy, if any

    std::size_t bytes_;     // of the kept copy
    void* kept_ = nullptr;  // mapped when large (support/page_memory.h)
};

// The chain as oneDNN post-ops; binary post-ops read a graph tensor.
struct PostOps {
    ::dnnl::post_ops ops;
    std::vector<std::pair<int, int>> binary_inputs;  // (post-op index, tensor id)
    std::vector<::dnnl::memory::desc> binary_descs;
    int sum_input = -1;  // tensor id a `sum` post-op adds (the output is pre-filled with it)
};

// oneDNN's format of a graph tensor's layout (ir::Tensor::channel_block):
// row-major of its rank, channels blocked, or channels last (rank 4 only).
// A tensor of 4, 8 or 16 channels in one block is both NChw{C}c and NHWC;
// `channels_last` picks NHWC, as its kernel's other operands have it.
::dnnl::memory::format_tag format_of(const ir::Tensor& tensor, bool channels_last = false);

// Whether a cluster's kernel runs channels-last (NHWC): some operand holds
// more channels than a blocked format's block in one block. oneDNN runs
// mixes of NHWC and blocked operands only by its reference code, so all
// its other one-block operands are then described as NHWC too.
bool is_channels_last(const ir::Graph& graph, const std::vector<int>& cluster);

// The post-ops computing the chain (cluster[1..]) from the anchor's output.
// The primitive's destination sees the chain's result with
// `destination_rank` dims: the result's own dims when the ranks are equal (a
// convolution's NCHW), else the leading dims flattened into the first (an
// inner product's [M, N] for a [..., N] result). Side operands are described
// in that rank: leading ones where they broadcast. Throws sol::Error saying
// why when oneDNN cannot compute the chain.
PostOps chain_post_ops(const ir::Graph& graph, const std::vector<int>& cluster, std::size_t destination_rank);

// `addend` (a `sum` post-op's input, or -1) when the cluster's output may be
// computed in its buffer: the cluster reads it once, and it has the output's
// layout (so no reorder in between); else -1.
int in_place_addend(const ir::Graph& graph, const std::vector<int>& cluster, int addend);

// Describes a forward primitive's operands in `operands`, in the order its
// run() passes their pointers: source, weights, destination, scratchpad, the
// bias when `has_bias`, then the chain's binary side operands.
template <typename PrimitiveDesc>
void add_forward_operands(Operands& operands, const PrimitiveDesc& pd, bool has_bias, const PostOps& post) {
    operands.add(DNNL_ARG_SRC, pd.src_desc());
    operands.add(DNNL_ARG_WEIGHTS, pd.weights_desc());
    operands.add(DNNL_ARG_DST, pd.dst_desc());
    operands.add(DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc());
    if (has_bias) operands.add(DNNL_ARG_BIAS, pd.bias_desc());
    for (std::size_t i = 0; i < post.binary_inputs.size(); ++i)
        operands.add(DNNL_ARG_ATTR_MULTIPLE_POST_OP(post.binary_inputs[i].first) | DNNL_ARG_SRC_1, post.binary_descs[i]);
}

// One call's pointers in add_forward_operands' order: the bias and the
// binary side operands come from the kernel's arguments (`bias_slot` < 0:
// none; `binary_slots`: (post-op index, argument slot) pairs).
inline CallPointers forward_pointers(void* src, void* weights, void* dst, void* scratchpad, void* const* args,
                                     int bias_slot, const std::vector<std::pair<int, int>>& binary_slots) {
    CallPointers pointers;
    for (void* pointer : {src, weights, dst, scratchpad}) pointers.push(pointer);
    if (bias_slot >= 0) pointers.push(args[bias_slot]);
    for (const auto& [index, slot] : binary_slots) pointers.push(args[slot]);
    return pointers;
}

}  // namespace sol::backends::dnnl
