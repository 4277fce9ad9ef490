// A cluster whose anchor is itself elementwise: one pass over the output,
// each operand read at its broadcast position.
#include "kernel_builder.h"

namespace sol::codegen::cpu {

void emit_elementwise(KernelBuilder& b) {
    const ir::Shape& out = b.result().shape;
    const std::size_t rank = out.size();
    auto& s = b.body;
    // A channel-blocked output is walked in its memory order: the lanes of a
    // block innermost, one vector per pixel.
    if (b.result().channel_block > 0) b.use_channel_block_loops(b.result().channel_block);
    // One register of a block per pixel, when the chain has vector forms.
    if (const std::string chain = b.loop_block() > 0 ? b.vector_chain_and_store(0, false) : ""; !chain.empty()) {
        s << b.parallel_for(3, ir::element_count(out)) << b.open_channel_block_pixel_loops(out) << indent(chain, 4)
          << "}\n";
        return;
    }
    std::vector<std::string> operands;
    for (int input : b.anchor().inputs) operands.push_back(b.element(input));
    const std::string compute = "    " + b.value_type() + " v = " + b.elementwise_expression(b.anchor(), operands) +
                                ";  // " + std::string(ir::name(b.anchor().op)) + "\n" + indent(b.epilogue_and_store("v"), 4) +
                                "}\n";
    if (b.loop_block() > 0) {
        s << b.parallel_for(3, ir::element_count(out)) << b.open_channel_block_loops(out) << compute;
        return;
    }
    // Threads over the outer loops; the innermost loop is left to the
    // compiler's vectorizer.
    if (rank > 0) s << b.parallel_for(rank > 1 ? static_cast<int>(rank) - 1 : 1, ir::element_count(out));
    s << b.open_loops(out, 0, rank) << "{\n" << compute;
}

}  // namespace sol::codegen::cpu
