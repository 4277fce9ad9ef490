// mean and sum over any set of axes: one output element per iteration of the
// kept axes, an inner loop nest over the reduced ones. An elementwise chain
// merged in by fuse_depth_first is computed per element as it is summed.
#include "kernel_builder.h"

#include <algorithm>

namespace sol::codegen::cpu {
namespace {

// The first of the trailing axes that are all reduced and can be walked as
// one contiguous run (BatchNorm's H and W): every tensor read spans all of
// them or none (a per-channel operand), so an element's offset within the
// run is the same in each. rank: none.
std::size_t contiguous_reduced_run(const KernelBuilder& b, const std::vector<bool>& reduced) {
    const ir::Shape& in = b.input(0).shape;
    std::size_t first = in.size();
    while (first > 0 && reduced[first - 1]) --first;
    if (in.size() - first < 2) return in.size();
    std::int64_t run = 1;
    for (std::size_t d = first; d < in.size(); ++d) run *= in[d];
    if (run < 2) return in.size();
    auto spans_run = [&](int id) {
        const ir::Tensor& t = b.graph().tensor(id);
        if (t.kind == ir::TensorKind::Constant) return true;
        const std::size_t shift = in.size() - t.shape.size();
        bool all = true, none = true;
        for (std::size_t d = first; d < in.size(); ++d) {
            const std::int64_t extent = d < shift ? 1 : t.shape[d - shift];
            all = all && extent == in[d];
            none = none && extent == 1;
        }
        return all || none;
    };
    for (std::size_t k = 0; k < b.cluster().size(); ++k) {
        const ir::Node& node = b.graph().nodes()[b.cluster()[k]];
        if (&node == &b.anchor()) break;
        if (!std::all_of(node.inputs.begin(), node.inputs.end(), spans_run)) return in.size();
    }
    return first;
}

// The channel blocking of the stored tensors a per-channel reduction reads
// (0: none is blocked, or blocks do not divide the channels).
int channel_lane_block(const KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    int block = 0;
    auto consider = [&](int id) {
        const ir::Tensor& t = b.graph().tensor(id);
        if (t.shape.size() == 4 && t.shape[1] == in[1]) block = std::max(block, t.channel_block);
    };
    if (!b.has_prologue()) consider(b.anchor().inputs[0]);
    for (std::size_t k = 0; k < b.cluster().size(); ++k) {
        const ir::Node& node = b.graph().nodes()[b.cluster()[k]];
        if (&node == &b.anchor()) break;
        for (int id : node.inputs) consider(id);
    }
    return block > 0 && in[1] % block == 0 ? block : 0;
}

// Per-channel sums over N, H and W (BatchNorm's statistics and gradients)
// of channel-blocked tensors: a register of one block's channels adds a whole
// block of memory per pixel, instead of each channel striding over the
// others' blocks.
void emit_blocked_channel_reduction(KernelBuilder& b, int block) {
    const ir::Shape& in = b.input(0).shape;
    const std::string count = std::to_string(in[0] * in[2] * in[3]);
    const std::string type = b.value_type();
    // The pixel index belongs to W, or to H when W is 1 (an axis of extent 1
    // takes no part in an offset).
    const bool by_rows = in[3] == 1;
    const std::string element =
        b.input_value({"r0", "(c0 * B + c1)", by_rows ? "r" : "0", by_rows ? "0" : "r"}, "c0", "c1", block);
    b.body << "constexpr int64_t B = " << block << ";\n"
           << b.parallel_for(1, ir::element_count(in)) << "for (int64_t c0 = 0; c0 < " << in[1] / block
           << "; ++c0) {\n"
           << "    " << type << " v[B] = {};\n"
           << "    for (int64_t r0 = 0; r0 < " << in[0] << "; ++r0)\n"
           << "    for (int64_t r = 0; r < " << in[2] * in[3] << "; ++r)\n"
           << "    #pragma omp simd\n"
           << "    for (int64_t c1 = 0; c1 < B; ++c1) v[c1] += " << element << ";\n"
           << "    for (int64_t c1 = 0; c1 < B; ++c1) out[c0 * B + c1] = v[c1]"
           << (b.anchor().op == ir::Op::Mean ? " / static_cast<float>(" + count + ")" : "") << ";\n"
           << "}\n";
}

}  // namespace

void emit_reduction(KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& out = b.result().shape;
    const auto axes = b.anchor().attrs.get_ints("axes");
    const bool keepdim = b.anchor().attrs.get_int("keepdim", 0) != 0;
    std::vector<bool> reduced(in.size(), false);
    for (std::int64_t axis : axes) reduced[axis] = true;
    const std::size_t run = contiguous_reduced_run(b, reduced);
    if (in.size() == 4 && reduced == std::vector<bool>{true, false, true, true} && run == 2)
        if (const int block = channel_lane_block(b); block > 0) return emit_blocked_channel_reduction(b, block);
    // Index expression of every input axis: a reduction variable r<d>, or the
    // output loop variable that walks it. A contiguous run of reduced axes is
    // one variable over all their elements, given to the run's last axis
    // longer than 1 (the others index 0; axes of extent 1 take no part in an
    // offset): the same offset in every tensor that spans the run.
    std::vector<std::string> index(in.size());
    std::size_t walker = in.size() - 1;
    while (walker > run && in[walker] == 1) --walker;
    std::int64_t reduced_count = 1, run_count = 1;
    std::size_t out_axis = 0;
    std::string reduce_loops;
    auto loop = [&](const std::string& variable, std::int64_t extent, bool innermost) {
        // The innermost loop is contiguous: a vector of partial sums (summing
        // in another order, as PyTorch's own kernels do), not one scalar
        // chain waiting on each add's latency.
        if (innermost) reduce_loops += "    #pragma omp simd reduction(+ : v)\n";
        reduce_loops += "    for (int64_t " + variable + " = 0; " + variable + " < " + std::to_string(extent) + "; ++" +
                        variable + ")\n";
    };
    for (std::size_t d = 0; d < in.size(); ++d) {
        if (reduced[d]) {
            reduced_count *= in[d];
            if (keepdim) ++out_axis;
            if (d >= run) {
                run_count *= in[d];
                index[d] = d == walker ? "r" : "0";
                if (d + 1 == in.size()) loop("r", run_count, true);
            } else {
                index[d] = "r" + std::to_string(d);
                loop(index[d], in[d], d + 1 == in.size());
            }
        } else {
            index[d] = "i" + std::to_string(out_axis++);
        }
    }
    std::string source_offset;
    std::int64_t stride = 1;
    for (std::size_t d = in.size(); d-- > 0;) {
        source_offset = index[d] + "*" + std::to_string(stride) + (source_offset.empty() ? "" : " + " + source_offset);
        stride *= in[d];
    }
    if (source_offset.empty()) source_offset = "0";
    const std::string element =
        b.has_prologue() ? b.input_value(index) : b.pointer(b.anchor().inputs[0]) + "[" + source_offset + "]";
    const std::string type = b.value_type();
    // Threads over all output loops: a per-channel sum kept as [1, C, 1, 1]
    // has a first loop of one iteration.
    b.body << (out.empty() ? "" : b.parallel_for(static_cast<int>(out.size()), ir::element_count(in)))
           << b.open_loops(out, 0, out.size())
           << "{\n"
           << "    " << type << " v = 0;\n"
           << reduce_loops << "        v += " << element << ";\n";
    if (b.anchor().op == ir::Op::Mean) b.body << "    v /= static_cast<float>(" << reduced_count << ");\n";
    b.body << "    out[" << b.output_offset() << "] = v;\n"
           << "}\n";
}

}  // namespace sol::codegen::cpu
