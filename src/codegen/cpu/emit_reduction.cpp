// mean and sum over any set of axes: one output element per iteration of the
// kept axes, an inner loop nest over the reduced ones.
#include "kernel_builder.h"

#include <algorithm>

namespace sol::codegen::cpu {

void emit_reduction(KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& out = b.result().shape;
    const auto axes = b.anchor().attrs.get_ints("axes");
    const bool keepdim = b.anchor().attrs.get_int("keepdim", 0) != 0;
    // Index expression of every input axis: a reduction variable r<d>, or the
    // output loop variable that walks it.
    std::vector<std::string> index(in.size());
    std::int64_t reduced_count = 1;
    std::size_t out_axis = 0;
    std::string reduce_loops;
    for (std::size_t d = 0; d < in.size(); ++d) {
        const bool reduced = std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(d)) != axes.end();
        if (reduced) {
            index[d] = "r" + std::to_string(d);
            reduced_count *= in[d];
            reduce_loops += "    for (int64_t r" + std::to_string(d) + " = 0; r" + std::to_string(d) + " < " +
                            std::to_string(in[d]) + "; ++r" + std::to_string(d) + ")\n";
            if (keepdim) ++out_axis;
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
    const std::string x = b.pointer(b.anchor().inputs[0]);
    const std::string type = b.value_type();
    b.body << (out.empty() ? "" : b.parallel_for(1, ir::element_count(in))) << b.open_loops(out, 0, out.size())
           << "{\n"
           << "    " << type << " v = 0;\n"
           << reduce_loops << "        v += " << x << "[" << source_offset << "];\n";
    if (b.anchor().op == ir::Op::Mean) b.body << "    v /= static_cast<float>(" << reduced_count << ");\n";
    b.body << "    out[" << b.output_offset() << "] = v;\n"
           << "}\n";
}

}  // namespace sol::codegen::cpu
