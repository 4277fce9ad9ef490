// Ops that only move elements: reshape (a copy of contiguous memory), permute,
// concat and slice.
#include "kernel_builder.h"

#include <algorithm>
#include <sstream>

namespace sol::codegen::cpu {
namespace {

// Elements per memcpy when threads share a copy.
constexpr std::int64_t kCopyChunk = 16 * 1024;

// A concat's part: `runs` runs of `run` elements, run r from source + r * run to out + offset +
// r * out_stride. Copied in chunks the threads share (one image's run is megabytes in SqueezeNet).
std::string copy_runs(const KernelBuilder& b, const std::string& source, std::int64_t runs, std::int64_t run,
                      std::int64_t out_stride, std::int64_t offset) {
    const std::int64_t chunks = (run + kCopyChunk - 1) / kCopyChunk;
    std::ostringstream s;
    s << b.parallel_for(2, runs * run) << "for (int64_t r = 0; r < " << runs << "; ++r)\n"
      << "for (int64_t k = 0; k < " << chunks << "; ++k) {\n"
      << "    const int64_t from = k * " << kCopyChunk << ", count = " << run << " - from < " << kCopyChunk << " ? "
      << run << " - from : " << kCopyChunk << ";\n"
      << "    std::memcpy(out + r * " << out_stride << " + " << offset << " + from, " << source << " + r * " << run
      << " + from, count * sizeof(" << b.value_type() << "));\n"
      << "}\n";
    return s.str();
}

std::vector<std::int64_t> contiguous_strides(const ir::Shape& shape) {
    std::vector<std::int64_t> strides(shape.size(), 1);
    for (std::size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
    return strides;
}

void emit_permute(KernelBuilder& b) {
    const ir::Shape& out = b.result().shape;
    const auto dims = b.anchor().attrs.get_ints("dims");
    const auto in_strides = contiguous_strides(b.input(0).shape);
    std::string source_offset;
    for (std::size_t d = 0; d < out.size(); ++d)
        source_offset += (d ? " + i" : "i") + std::to_string(d) + "*" + std::to_string(in_strides[dims[d]]);
    if (source_offset.empty()) source_offset = "0";
    const std::string x = b.pointer(b.anchor().inputs[0]);
    // The threads share the leading axes (the batch alone is 1 at inference).
    const int shared = static_cast<int>(std::min<std::size_t>(3, out.size() > 1 ? out.size() - 1 : out.size()));
    b.body << b.parallel_for(shared, ir::element_count(out)) << b.open_loops(out, 0, out.size())
           << "    out[" << b.output_offset() << "] = " << x << "[" << source_offset << "];\n";
}

// Concatenation along the channels of channel-blocked tensors: a part whose
// channels start on a block boundary of the same blocking is a run of whole
// blocks per image, copied as such, an NHWC part into an NHWC output a run
// per pixel; any other part element by element, each side addressed in its
// own layout.
void emit_blocked_channel_concat(KernelBuilder& b) {
    const ir::Tensor& out = b.result();
    const std::int64_t plane = out.shape[2] * out.shape[3];
    std::int64_t first_channel = 0;
    for (int input : b.anchor().inputs) {
        const ir::Tensor& part = b.graph().tensor(input);
        const std::string x = b.pointer(input);
        const int block = out.channel_block;
        const bool channels_last = block == out.shape[1] && part.channel_block == part.shape[1];
        if (block > 0 && part.channel_block == block && first_channel % block == 0) {
            // A run of whole blocks per image.
            b.body << copy_runs(b, x, out.shape[0], part.shape[1] * plane, out.shape[1] * plane, first_channel * plane);
        } else if (channels_last) {
            // Both NHWC: the part's channels of a pixel are one run.
            b.body << copy_runs(b, x, out.shape[0] * plane, part.shape[1], out.shape[1], first_channel);
        } else {
            const std::vector<std::string> index{"i0", "i1", "i2", "i3"};
            const std::vector<std::string> shifted{"i0", "i1 + " + std::to_string(first_channel), "i2", "i3"};
            b.body << b.parallel_for(2, ir::element_count(part.shape)) << b.open_loops(part.shape, 0, 4)
                   << "    out[" << layout_offset(out, shifted) << "] = " << x << "[" << layout_offset(part, index)
                   << "];\n";
        }
        first_channel += part.shape[1];
    }
}

// A channel concat followed by an elementwise chain (depth-first fusion): one
// pass reads each part and writes the chain's result; the concatenated
// tensor is never stored. The parts share one layout (fuse_depth_first
// checks), so one loop nest walks them through the part tables.
void emit_channel_concat_with_chain(KernelBuilder& b) {
    const ir::Node& concat = b.anchor();
    const ir::Shape& out = b.result().shape;
    const int block = b.source_block();
    b.body << b.declare_concat_parts(concat);
    if (block > 0) b.use_channel_block_loops(block);
    // One register of a block per pixel, when the chain has vector forms.
    if (const std::string chain = block > 0 ? b.vector_chain_and_store(1, true) : ""; !chain.empty()) {
        b.body << b.parallel_for(3, ir::element_count(out)) << b.open_channel_block_pixel_loops(out) << "    "
               << b.vector_type() << " v = sol_vload<" << b.vector_type() << ">(&"
               << b.concat_element(concat, {"i0", "i1", "i2", "i3"}, "c0", "0") << ");\n" << indent(chain, 4) << "}\n";
        return;
    }
    if (block > 0) {
        b.body << b.parallel_for(3, ir::element_count(out)) << b.open_channel_block_loops(out);
    } else {
        b.body << b.parallel_for(3, ir::element_count(out)) << b.open_loops(out, 0, 4) << "{\n";
    }
    b.body << "    float v = " << b.concat_element(concat, {"i0", "i1", "i2", "i3"}, block ? "c0" : "", block ? "c1" : "")
           << ";\n" << indent(b.epilogue_and_store("v"), 4) << "}\n";
}

void emit_concat(KernelBuilder& b) {
    if (b.has_epilogue()) return emit_channel_concat_with_chain(b);
    const ir::Shape& out = b.result().shape;
    const std::int64_t axis = b.anchor().attrs.get_int("axis");
    bool blocked = b.result().channel_block > 0;
    for (int input : b.anchor().inputs) blocked = blocked || b.graph().tensor(input).channel_block > 0;
    if (blocked) return emit_blocked_channel_concat(b);  // the layout pass blocks only channel concats
    std::int64_t outer = 1, inner = 1;
    for (std::int64_t d = 0; d < axis; ++d) outer *= out[d];
    for (std::size_t d = axis + 1; d < out.size(); ++d) inner *= out[d];
    std::int64_t offset = 0;
    for (int input : b.anchor().inputs) {
        const std::int64_t block = b.graph().tensor(input).shape[axis] * inner;
        b.body << copy_runs(b, b.pointer(input), outer, block, out[axis] * inner, offset);
        offset += block;
    }
}

// Elements start, start+step, ... of one axis; every other axis whole.
void emit_slice(KernelBuilder& b) {
    const ir::Shape& out = b.result().shape;
    const std::int64_t axis = b.anchor().attrs.get_int("axis");
    const std::int64_t start = b.anchor().attrs.get_int("start"), step = b.anchor().attrs.get_int("step", 1);
    const auto in_strides = contiguous_strides(b.input(0).shape);
    std::string source_offset;
    for (std::size_t d = 0; d < out.size(); ++d) {
        std::string index = "i" + std::to_string(d);
        if (static_cast<std::int64_t>(d) == axis)
            index = "(" + std::to_string(start) + " + " + index + (step == 1 ? "" : "*" + std::to_string(step)) + ")";
        source_offset += (d ? " + " : "") + index + "*" + std::to_string(in_strides[d]);
    }
    const std::string x = b.pointer(b.anchor().inputs[0]);
    b.body << b.parallel_for(1, ir::element_count(out)) << b.open_loops(out, 0, out.size())
           << "    out[" << b.output_offset() << "] = " << x << "[" << source_offset << "];\n";
}

}  // namespace

void emit_movement(KernelBuilder& b) {
    switch (b.anchor().op) {
        case ir::Op::Reshape:
            b.body << "std::memcpy(out, " << b.pointer(b.anchor().inputs[0]) << ", "
                   << ir::element_count(b.result().shape) << " * sizeof(" << b.value_type() << "));\n";
            return;
        case ir::Op::Permute: emit_permute(b); return;
        case ir::Op::Slice: emit_slice(b); return;
        default: emit_concat(b); return;
    }
}

}  // namespace sol::codegen::cpu
