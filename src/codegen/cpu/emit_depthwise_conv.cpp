// A depthwise convolution (one filter per channel) on row-major images.
// emit_conv2d walks it an output row at a time: a few dozen columns per tap,
// so loop overhead outweighs the nine multiply-adds per output (ShuffleNet's
// 28x28 and 14x14 planes). Here each plane is copied once into a zero-padded
// buffer, split by stride into SH x SW phase planes: phase (rp, cp) holds the
// padded rows rp, rp + SH, ... and columns cp, cp + SW, ... (stride 1: one
// phase, the padded plane itself). Tap (kh, kw) of output (oh, ow) reads
// padded row oh*SH + kh*DH and column ow*SW + kw*DW, which is row
// oh + kh*DH/SH, column ow + kw*DW/SW of phase (kh*DH % SH, kw*DW % SW): so
// every tap is one unit-stride vector loop over the whole output plane (OH
// rows of WQ phase columns, the columns past OW computed and dropped), with
// no bounds checks and no strided loads.
#include "kernel_builder.h"

namespace sol::codegen::cpu {
namespace {

// The phase planes and the accumulators live on the thread's stack.
constexpr std::int64_t kStackBytes = 64 * 1024;

struct Geometry {
    std::int64_t sh, sw;    // stride
    std::int64_t hq, wq;    // rows and columns of one phase plane
    std::int64_t slack;     // floats the last row's dropped columns read past the last plane
    std::int64_t oh;        // output rows
};

Geometry geometry(const KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& w = b.input(1).shape;
    const auto stride = b.anchor().attrs.get_ints("stride", {1, 1});
    const auto padding = b.anchor().attrs.get_ints("padding", {0, 0});
    const auto dilation = b.anchor().attrs.get_ints("dilation", {1, 1});
    const std::int64_t hp = in[2] + 2 * padding[0], wp = in[3] + 2 * padding[1];
    return {stride[0], stride[1], (hp + stride[0] - 1) / stride[0], (wp + stride[1] - 1) / stride[1],
            (w[3] - 1) * dilation[1] / stride[1], b.result().shape[2]};
}

}  // namespace

bool is_depthwise_conv_on_planes(const KernelBuilder& b) {
    const ir::Node& conv = b.anchor();
    if (conv.op != ir::Op::Conv2d || b.input(0).shape.size() != 4) return false;
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& w = b.input(1).shape;
    const std::int64_t channels = in[1];
    if (conv.attrs.get_int("groups", 1) != channels || w[0] != channels || w[1] != 1 || b.input(0).channel_block != 0 ||
        b.input(0).dtype != ir::DType::Float32 || b.result().dtype != ir::DType::Float32)
        return false;
    const Geometry g = geometry(b);
    return (g.sh * g.sw * g.hq * g.wq + g.slack + g.oh * g.wq) * 4 <= kStackBytes;
}

void emit_depthwise_conv(KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& w = b.input(1).shape;
    const ir::Shape& out = b.result().shape;
    const auto padding = b.anchor().attrs.get_ints("padding", {0, 0});
    const auto dilation = b.anchor().attrs.get_ints("dilation", {1, 1});
    const Geometry g = geometry(b);
    const std::string x = b.pointer(b.anchor().inputs[0]);
    const std::string weights = b.pointer(b.anchor().inputs[1]);
    const std::string bias = b.anchor().inputs.size() == 3 ? b.pointer(b.anchor().inputs[2]) : "";

    auto& s = b.body;
    s << "// depthwise: each plane zero-padded once into SH x SW phase planes, then every tap is one\n"
      << "// pass over the output plane\n"
      << "constexpr int64_t C = " << in[1] << ", H = " << in[2] << ", W = " << in[3] << ";  // input\n"
      << "constexpr int64_t OH = " << out[2] << ", OW = " << out[3] << ", KH = " << w[2] << ", KW = " << w[3]
      << ", PH = " << padding[0] << ", PW = " << padding[1] << ", DH = " << dilation[0] << ", DW = " << dilation[1]
      << ", SH = " << g.sh << ", SW = " << g.sw << ";\n"
      << "constexpr int64_t HQ = " << g.hq << ", WQ = " << g.wq << ";  // one phase plane\n"
      << b.parallel_for(2, ir::element_count(out) * w[2] * w[3])
      << "for (int64_t i0 = 0; i0 < " << out[0] << "; ++i0)\n"
      << "for (int64_t i1 = 0; i1 < C; ++i1) {\n"
      << "    // Taps of the last row's dropped columns read up to " << g.slack << " floats past the planes.\n"
      << "    alignas(64) float phases[SH * SW * HQ * WQ + " << g.slack << "] = {};\n"
      << "    const float* __restrict__ plane = " << x << " + (i0 * C + i1) * H * W;\n"
      << "    for (int64_t h = 0; h < H; ++h) {\n"
      << "        const int64_t hp = h + PH;  // in the padded plane\n"
      << "        float* __restrict__ row = phases + (hp % SH) * SW * HQ * WQ + hp / SH * WQ;\n"
      << "        const float* __restrict__ source = plane + h * W;\n";
    // Phase column cp holds the padded columns q * SW + cp; those inside the image are q in
    // [first, end), constants here (a unit-stride store per phase, loads SW apart).
    for (std::int64_t cp = 0; cp < g.sw; ++cp) {
        const std::int64_t first = (padding[1] - cp + g.sw - 1) / g.sw;  // padding[1] - cp > -SW
        const std::int64_t end = (padding[1] + in[3] - cp + g.sw - 1) / g.sw;  // one past the last
        if (end <= first) continue;
        s << "#pragma omp simd\n"
          << "        for (int64_t q = " << first << "; q < " << end << "; ++q) row[" << cp
          << " * HQ * WQ + q] = source[q * SW + " << cp - padding[1] << "];\n";
    }
    s << "    }\n"
      << "    alignas(64) float acc[OH * WQ] = {};\n"
      << "    for (int64_t kh = 0; kh < KH; ++kh)\n"
      << "        for (int64_t kw = 0; kw < KW; ++kw) {\n"
      << "            const float tap = " << weights << "[(i1 * KH + kh) * KW + kw];\n"
      << "            const float* __restrict__ from = phases + ((kh * DH % SH) * SW + kw * DW % SW) * HQ * WQ +\n"
      << "                                             kh * DH / SH * WQ + kw * DW / SW;\n"
      << "#pragma omp simd\n"
      << "            for (int64_t q = 0; q < OH * WQ; ++q) acc[q] += tap * from[q];\n"
      << "        }\n"
      << "    for (int64_t i2 = 0; i2 < OH; ++i2)\n"
      << "#pragma omp simd\n"
      << "    for (int64_t i3 = 0; i3 < OW; ++i3) {\n"
      << "        float v = acc[i2 * WQ + i3]" << (bias.empty() ? "" : " + " + bias + "[i1]") << ";\n"
      << indent(b.epilogue_and_store("v"), 8) << "    }\n"
      << "}\n";
}

}  // namespace sol::codegen::cpu
