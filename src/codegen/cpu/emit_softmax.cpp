// softmax and log_softmax along one axis, max-subtracted for stability.
#include "kernel_builder.h"

namespace sol::codegen::cpu {

void emit_softmax(KernelBuilder& b) {
    const ir::Shape& shape = b.result().shape;
    const std::int64_t axis = b.anchor().attrs.get_int("axis");
    std::int64_t outer = 1, inner = 1;
    for (std::int64_t d = 0; d < axis; ++d) outer *= shape[d];
    for (std::size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
    const bool log = b.anchor().op == ir::Op::LogSoftmax;
    const std::string x = b.pointer(b.anchor().inputs[0]);
    b.body << "constexpr int64_t outer = " << outer << ", A = " << (shape.empty() ? 1 : shape[axis])
           << ", inner = " << inner << ";\n"
           << b.parallel_for(2, ir::element_count(shape) * 4)
           << "for (int64_t o = 0; o < outer; ++o)\n"
           << "for (int64_t j = 0; j < inner; ++j) {\n"
           << "    const float* __restrict__ src = " << x << " + o * A * inner + j;\n"
           << "    float* __restrict__ dst = out + o * A * inner + j;\n"
           << "    float top = -INFINITY;\n"
           << "    for (int64_t a = 0; a < A; ++a) top = src[a * inner] > top ? src[a * inner] : top;\n"
           << "    float sum = 0.0f;\n"
           << "    for (int64_t a = 0; a < A; ++a) sum += std::exp(src[a * inner] - top);\n"
           << (log ? "    const float log_sum = std::log(sum);\n"
                     "    for (int64_t a = 0; a < A; ++a) dst[a * inner] = src[a * inner] - top - log_sum;\n"
                   : "    for (int64_t a = 0; a < A; ++a) dst[a * inner] = std::exp(src[a * inner] - top) / sum;\n")
           << "}\n";
}

}  // namespace sol::codegen::cpu
