// A cluster whose anchor is itself elementwise: one pass over the output,
// each operand read at its broadcast position.
#include "kernel_builder.h"

namespace sol::codegen::cpu {
namespace {

// The first of the trailing output axes that one loop can walk as a single
// run: every tensor the kernel reads spans all of them row-major, or none (a
// per-channel operand, a single value). A 7x7 plane is too short an inner
// loop to vectorize well; its image's 49 x C elements are not. rank: none.
std::size_t run_start(const KernelBuilder& b) {
    const ir::Tensor& out = b.result();
    const std::size_t rank = out.shape.size();
    if (b.has_prologue() || out.channel_block != 0 || rank < 2) return rank;
    std::size_t first = 0;
    for (int index : b.cluster())
        for (int id : b.graph().nodes()[index].inputs) {
            const ir::Tensor& t = b.graph().tensor(id);
            if (t.kind == ir::TensorKind::Constant) continue;
            if (t.channel_block != 0) return rank;
            const std::size_t shift = rank - t.shape.size();
            // Walking back from the last axis: how far the tensor is all full or all 1.
            std::size_t start = rank;
            bool full = true, ones = true;
            while (start > first) {
                const std::int64_t extent = start - 1 < shift ? 1 : t.shape[start - 1 - shift];
                full = full && extent == out.shape[start - 1];
                ones = ones && extent == 1;
                if (!full && !ones) break;
                --start;
            }
            first = std::max(first, start);
        }
    // Worth it for two axes or more, with two elements or more (so some axis
    // is longer than 1 to walk them).
    std::int64_t run = 1;
    for (std::size_t d = first; d < rank; ++d) run *= out.shape[d];
    return first + 1 < rank && run > 1 ? first : rank;
}

}  // namespace

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
    if (const std::size_t first = run_start(b); first < rank) {
        // The run's last axis longer than 1 walks the run; its other axes
        // stay 0, which leaves each operand's offset within the run the flat
        // index (axes of extent 1 take no part in an offset).
        std::size_t walker = rank - 1;
        while (out[walker] == 1) --walker;
        std::string zeros;
        for (std::size_t d = first; d < rank; ++d)
            if (d != walker) zeros += (zeros.empty() ? "i" : ", i") + std::to_string(d) + " = 0";
        std::int64_t run = 1;
        for (std::size_t d = first; d < rank; ++d) run *= out[d];
        const std::string last = "i" + std::to_string(walker);
        s << "const int64_t " << zeros << ";  // axes " << first << ".." << rank - 1 << " walked as one run\n"
          << b.parallel_for(first > 0 ? static_cast<int>(first) : 1, ir::element_count(out)) << b.open_loops(out, 0, first)
          << "for (int64_t " << last << " = 0; " << last << " < " << run << "; ++" << last << ")\n{\n" << compute;
        return;
    }
    // Threads over the outer loops; the innermost loop is left to the
    // compiler's vectorizer.
    if (rank > 0) s << b.parallel_for(rank > 1 ? static_cast<int>(rank) - 1 : 1, ir::element_count(out));
    s << b.open_loops(out, 0, rank) << "{\n" << compute;
}

}  // namespace sol::codegen::cpu
