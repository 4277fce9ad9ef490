// A 1x1, stride-1, unpadded, ungrouped convolution on row-major images is a
// matrix product per image: out[oc][p] = sum_ic w[oc][ic] * x[ic][p] over
// the P = H*W pixels. emit_conv2d's accumulator rows live in memory, which
// starves the FMA units when few output channels share an input row (58 or
// 116 channels in ShuffleNet: two per pass); here a tile of MR output
// channels by NV vectors of pixels stays in registers for the whole input
// channel loop, so each loaded vector of x feeds MR FMAs and each broadcast
// weight NV. The last output channels take a register tile of fewer rows;
// the last pixels are copied, zero-padded to whole vectors, into a buffer on
// the stack (or, for very many input channels, take a loop the host compiler
// vectorizes over pixels).
#include "kernel_builder.h"

namespace sol::codegen::cpu {
namespace {

struct RegisterTile {
    std::int64_t rows;     // output channels (MR)
    std::int64_t vectors;  // vectors of pixels (NV)
};

// MR * NV accumulators, NV loads of x and one broadcast weight must fit the
// register file: 32 vector registers on AVX-512 and NEON, 16 on AVX2.
RegisterTile register_tile(int vector_width) {
    return vector_width == 8 ? RegisterTile{6, 2} : RegisterTile{8, 3};
}

// The register tile's loop for `rows` channels: accumulators a{m}_{v},
// stored into tile[m][v * L ...] when the input channels are done. Input
// channel ic's pixels start at `source` + ic * `stride`.
std::string register_tile_code(std::int64_t rows, std::int64_t vectors, const std::string& source,
                               const std::string& stride) {
    std::ostringstream s;
    s << "{  // " << rows << " channels x " << vectors << " vectors in registers\n";
    for (std::int64_t m = 0; m < rows; ++m) {
        s << "    vec";
        for (std::int64_t v = 0; v < vectors; ++v) s << (v ? ", " : " ") << "a" << m << "_" << v << " = {}";
        s << ";\n";
    }
    s << "    for (int64_t ic = 0; ic < IC; ++ic) {\n"
      << "        const float* __restrict__ xr = " << source << " + ic * " << stride << ";\n";
    for (std::int64_t v = 0; v < vectors; ++v)
        s << "        const vec x" << v << " = sol_vload<vec>(xr + " << v << " * L);\n";
    for (std::int64_t m = 0; m < rows; ++m) {
        s << "        { const vec w = sol_vsplat<vec>(ws[" << m << " * IC + ic]);";
        for (std::int64_t v = 0; v < vectors; ++v) s << " a" << m << "_" << v << " += w * x" << v << ";";
        s << " }\n";
    }
    s << "    }\n";
    for (std::int64_t m = 0; m < rows; ++m)
        for (std::int64_t v = 0; v < vectors; ++v)
            s << "    sol_vstore(&tile[" << m << "][" << v << " * L], a" << m << "_" << v << ");\n";
    s << "}\n";
    return s.str();
}

// The zero-padded copy of the last pixels lives on the thread's stack, which
// a deployed library's host program may keep small.
constexpr std::int64_t kPaddedBytes = 64 * 1024;

}  // namespace

bool is_pointwise_conv(const KernelBuilder& b) {
    const ir::Node& conv = b.anchor();
    const ir::Shape& weight = b.input(1).shape;
    return conv.op == ir::Op::Conv2d && b.input(0).shape.size() == 4 && weight[2] == 1 && weight[3] == 1 &&
           conv.attrs.get_int("groups", 1) == 1 && conv.attrs.get_ints("stride", {1, 1}) == std::vector<std::int64_t>{1, 1} &&
           conv.attrs.get_ints("padding", {0, 0}) == std::vector<std::int64_t>{0, 0} &&
           b.input(0).channel_block == 0 && b.input(0).dtype == ir::DType::Float32 &&
           b.result().dtype == ir::DType::Float32;
}

void emit_pointwise_conv(KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& out = b.result().shape;
    const std::int64_t L = b.target().vector_width, P = in[2] * in[3];
    const RegisterTile full = register_tile(b.target().vector_width);
    const std::int64_t NR = full.vectors * L;
    const std::int64_t OC = out[1], MR = full.rows;
    const std::int64_t oc_tiles = (OC + MR - 1) / MR, p_tiles = (P + NR - 1) / NR;
    const std::string x = b.pointer(b.anchor().inputs[0]);
    const std::string w = b.pointer(b.anchor().inputs[1]);
    const std::string bias = b.anchor().inputs.size() == 3 ? b.pointer(b.anchor().inputs[2]) : "";

    auto& s = b.body;
    s << "// pointwise: per image a matrix product out[oc][p] = sum_ic w[oc][ic] * x[ic][p], in tiles of\n"
      << "// MR channels x NR pixels held in registers\n"
      << "typedef float vec __attribute__((vector_size(" << L * 4 << ")));\n"
      << "constexpr int64_t IC = " << in[1] << ", OC = " << OC << ", P = " << P << ", OW = " << out[3] << ", L = " << L << ";\n"
      << "constexpr int64_t MR = " << MR << ", NR = " << NR << ";\n"
      << b.parallel_for(3, ir::element_count(out) * in[1])
      << "for (int64_t i0 = 0; i0 < " << out[0] << "; ++i0)\n"
      << "for (int64_t ot = 0; ot < " << oc_tiles << "; ++ot)\n"
      << "for (int64_t pt = 0; pt < " << p_tiles << "; ++pt) {\n"
      << "    const int64_t oc0 = ot * MR, p0 = pt * NR;\n"
      << "    const int64_t rows = OC - oc0 < MR ? OC - oc0 : MR, width = P - p0 < NR ? P - p0 : NR;\n"
      << "    const float* __restrict__ xs = " << x << " + i0 * IC * P + p0;\n"
      << "    const float* __restrict__ ws = " << w << " + oc0 * IC;\n"
      << "    alignas(64) float tile[MR][NR];\n";
    // Tiles of fewer rows than MR: the last output channels.
    auto by_rows = [&](std::int64_t vectors, const std::string& source, const std::string& stride) {
        std::string code = "if (rows == MR) " + register_tile_code(MR, vectors, source, stride);
        if (OC % MR != 0) code += "else " + register_tile_code(OC % MR, vectors, source, stride);
        return code;
    };
    s << "    if (width == NR) {\n" << indent(by_rows(full.vectors, "xs", "P"), 8) << "    }";
    const std::int64_t tail = P % NR, tail_vectors = (tail + L - 1) / L;
    if (tail == 0) {
        s << "\n";
    } else if (in[1] * tail_vectors * L * 4 <= kPaddedBytes) {
        s << " else {  // the last " << tail << " pixels, zero-padded to whole vectors\n"
          << "        alignas(64) float padded[IC][" << tail_vectors * L << "];\n"
          << "        for (int64_t ic = 0; ic < IC; ++ic)\n"
          << "            for (int64_t j = 0; j < " << tail_vectors * L << "; ++j) padded[ic][j] = j < " << tail
          << " ? xs[ic * P + j] : 0.0f;\n"
          << indent(by_rows(tail_vectors, "padded[0]", std::to_string(tail_vectors * L)), 8) << "    }\n";
    } else {
        s << " else {  // the last pixels: vectorized over them, one channel at a time\n"
          << "        for (int64_t m = 0; m < rows; ++m) {\n"
          << "            float* __restrict__ row = tile[m];\n"
          << "            for (int64_t j = 0; j < width; ++j) row[j] = 0.0f;\n"
          << "            for (int64_t ic = 0; ic < IC; ++ic) {\n"
          << "                const float wv = ws[m * IC + ic];\n"
          << "#pragma omp simd\n"
          << "                for (int64_t j = 0; j < width; ++j) row[j] += wv * xs[ic * P + j];\n"
          << "            }\n"
          << "        }\n"
          << "    }\n";
    }
    s << "    // Bias and epilogue row by row of the output plane: unit-stride stores.\n"
      << "    for (int64_t m = 0; m < rows; ++m)\n"
      << "    for (int64_t p = p0; p < p0 + width;) {\n"
      << "        const int64_t i1 = oc0 + m, i2 = p / OW, first = p % OW;\n"
      << "        const int64_t last = OW - first < p0 + width - p ? OW : first + (p0 + width - p);\n"
      << "        const float* __restrict__ from = &tile[m][p - p0];\n"
      << "        p += last - first;\n"
      << "        (void)i2;\n"
      << "#pragma omp simd\n"
      << "        for (int64_t i3 = first; i3 < last; ++i3) {\n"
      << "            float v = from[i3 - first]" << (bias.empty() ? "" : " + " + bias + "[i1]") << ";\n"
      << indent(b.epilogue_and_store("v"), 12) << "        }\n"
      << "    }\n"
      << "}\n";
}

}  // namespace sol::codegen::cpu
