// Explicit vector code for kernels that walk channel blocks: the fused
// elementwise chain computed on one register of lanes per pixel (see the
// sol_f32x{16,8} types of the kernel prologue), where every op has a vector
// form and every operand is one register load, a broadcast or a literal.
// Loop variable c0 counts registers of channels (channel c0 * lanes + lane);
// tensors blocked by a multiple of the lanes, or NHWC, are read and written a
// register at a time too (an emitter walking NHWC pixels in registers never
// lets one straddle the pixel's end).
// Otherwise emitters keep their scalar loop over the lanes (`omp simd`).
#include "kernel_builder.h"

namespace sol::codegen::cpu {

std::string KernelBuilder::vector_type() const {
    if (loop_block_ == 16) return "sol_f32x16";
    if (loop_block_ == 8) return "sol_f32x8";
    return "";
}

std::string KernelBuilder::vector_operand(int tensor_id) {
    const ir::Tensor& t = graph_.tensor(tensor_id);
    const std::string V = vector_type();
    if (t.dtype != ir::DType::Float32) return "";
    if (t.kind == ir::TensorKind::Constant) return "sol_vsplat<" + V + ">(" + literal(t.value, t.dtype) + ")";
    if (ir::element_count(t.shape) == 1) return "sol_vsplat<" + V + ">(" + pointer(tensor_id) + "[0])";
    // t is broadcast against the rank-4 output from the right; its lanes must
    // be channels of its own.
    const ir::Shape& out = result().shape;
    const std::size_t shift = out.size() - t.shape.size();
    if (shift > 1 || t.shape[1 - shift] != out[1]) return "";
    std::vector<std::string> index;
    bool channels_only = true;
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
        const std::size_t axis = d + shift;
        if (axis != 1 && t.shape[d] != 1) channels_only = false;
        index.push_back(t.shape[d] == 1 ? "0" : axis == 1 ? "c0 * " + std::to_string(loop_block_) : "i" + std::to_string(axis));
    }
    // Blocked like the loops: the block's lanes are contiguous.
    if (shift == 0 && t.channel_block == loop_block_)
        return "sol_vload<" + V + ">(" + pointer(tensor_id) + " + " + layout_offset(t, index, "c0", "0") + ")";
    // Blocks of whole registers, or one block of all channels (NHWC, which
    // the emitter walks in whole registers): so are the register's lanes.
    if (shift == 0 && t.channel_block > 0 && (t.channel_block % loop_block_ == 0 || t.channel_block == t.shape[1]))
        return "sol_vload<" + V + ">(" + pointer(tensor_id) + " + " + layout_offset(t, index) + ")";
    // Row-major with channels the only dimension that is not broadcast (a
    // [C] or [1, C, 1, 1] parameter): the block's channels are contiguous.
    if (t.channel_block == 0 && channels_only)
        return "sol_vload<" + V + ">(" + pointer(tensor_id) + " + " + layout_offset(t, index) + ")";
    return "";
}

std::string KernelBuilder::vector_expression(const ir::Node& node, const std::vector<std::string>& x) const {
    switch (node.op) {
        case ir::Op::Add: return "(" + x[0] + " + " + x[1] + ")";
        case ir::Op::Sub: return "(" + x[0] + " - " + x[1] + ")";
        case ir::Op::Mul: return "(" + x[0] + " * " + x[1] + ")";
        case ir::Op::Div: return "(" + x[0] + " / " + x[1] + ")";
        case ir::Op::MulAdd: return "(" + x[0] + " * " + x[1] + " + " + x[2] + ")";
        case ir::Op::Neg: return "(-" + x[0] + ")";
        case ir::Op::Relu: return "sol_vrelu(" + x[0] + ")";
        case ir::Op::ReluGrad: return "sol_vrelu_grad(" + x[0] + ", " + x[1] + ")";
        case ir::Op::Expand: return x[0];
        case ir::Op::Hardswish: return "sol_vhardswish(" + x[0] + ")";
        case ir::Op::Hardsigmoid: return "sol_vhardsigmoid(" + x[0] + ")";
        case ir::Op::Clamp:
            return "sol_vclamp(" + x[0] + ", " + literal(node.attrs.get_float("min"), ir::DType::Float32) + ", " +
                   literal(node.attrs.get_float("max"), ir::DType::Float32) + ")";
        default: return "";  // no vector form here: the scalar lane loop computes it
    }
}

std::vector<std::string> KernelBuilder::vector_operands(std::size_t k, const std::string& running) {
    const ir::Node& node = graph_.nodes()[cluster_[k]];
    const int previous = k > 0 ? graph_.nodes()[cluster_[k - 1]].output : -1;
    std::vector<std::string> operands;
    for (int input : node.inputs) operands.push_back(!running.empty() && input == previous ? running : vector_operand(input));
    return operands;
}

std::string KernelBuilder::vector_chain_and_store(std::size_t first, bool reads_running) {
    const int block = result().channel_block;
    if (vector_type().empty() || result().dtype != ir::DType::Float32 || block <= 0 ||
        (block % loop_block_ != 0 && block != result().shape[1]))
        return "";
    std::string code;
    for (std::size_t k = first; k < cluster_.size(); ++k) {
        const ir::Node& node = graph_.nodes()[cluster_[k]];
        if (graph_.tensor(node.output).dtype != ir::DType::Float32) return "";
        const bool declares = k == first && !reads_running;
        const std::vector<std::string> operands = vector_operands(k, declares ? "" : "v");
        for (const std::string& operand : operands)
            if (operand.empty()) return "";
        const std::string expression = vector_expression(node, operands);
        if (expression.empty()) return "";
        code += (declares ? vector_type() + " v" : std::string("v")) + " = " + expression + ";  // " +
                std::string(ir::name(node.op)) + "\n";
    }
    const std::string offset = block == loop_block_
                                   ? layout_offset(result(), {"i0", "c0", "i2", "i3"}, "c0", "0")
                                   : layout_offset(result(), {"i0", "c0 * " + std::to_string(loop_block_), "i2", "i3"});
    return code + "sol_vstore(out + " + offset + ", v);\n";
}

int register_tail(std::int64_t channels, int vector_width) {
    const std::int64_t tail = channels % vector_width;
    if (tail == 0) return 0;
    return vector_width == 16 && tail == 8 ? 8 : -1;
}

bool is_vector_conv_candidate(const KernelBuilder& b) {
    const ir::Node& conv = b.anchor();
    if (conv.op != ir::Op::Conv2d || b.has_prologue() || b.input(0).shape.size() != 4) return false;
    if (b.target().vector_width != 16 && b.target().vector_width != 8) return false;
    for (int id : conv.inputs)
        if (b.graph().tensor(id).dtype != ir::DType::Float32) return false;
    // The weights (and bias) row-major: the emitters address them so.
    for (std::size_t k = 1; k < conv.inputs.size(); ++k)
        if (b.graph().tensor(conv.inputs[k]).channel_block != 0) return false;
    return b.result().dtype == ir::DType::Float32;
}

std::string KernelBuilder::register_chain_and_store() {
    const std::string vector = vector_chain_and_store(anchor_position_ + 1, true);
    if (!vector.empty()) return vector;
    const std::string lanes = std::to_string(loop_block_);
    return "alignas(64) float lane[" + lanes + "];\n"
           "sol_vstore(lane, v);\n"
           "for (int64_t c1 = 0; c1 < " + lanes + "; ++c1) {\n"
           "    const int64_t i1 = c0 * " + lanes + " + c1;\n"
           "    (void)i1;\n"
           "    float s = lane[c1];\n" +
           indent(epilogue_and_store("s"), 4) + "}\n";
}

std::string KernelBuilder::open_channel_block_pixel_loops(const ir::Shape& shape) const {
    return "for (int64_t i0 = 0; i0 < " + std::to_string(shape[0]) + "; ++i0)\n" +
           "for (int64_t c0 = 0; c0 < " + std::to_string(shape[1] / loop_block_) + "; ++c0)\n" +
           "for (int64_t i2 = 0; i2 < " + std::to_string(shape[2]) + "; ++i2)\n" +
           "for (int64_t i3 = 0; i3 < " + std::to_string(shape[3]) + "; ++i3) {\n";
}

}  // namespace sol::codegen::cpu
