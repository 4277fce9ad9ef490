// A depthwise convolution (one filter per channel) with stride 1 on
// row-major images. emit_conv2d walks it an output row at a time: a few
// dozen columns per tap, so loop overhead outweighs the nine multiply-adds
// per output (ShuffleNet's 28x28 and 14x14 planes). Here each plane is
// copied once into a zero-padded buffer; then, with stride 1, tap (kh, kw)
// of output (oh, ow) reads padded[(oh + kh*DH) * WP + ow + kw*DW], so every
// tap is one vector loop over the whole plane (OH rows of WP columns, the
// columns past OW computed and dropped), and no tap needs bounds checks.
#include "kernel_builder.h"

namespace sol::codegen::cpu {
namespace {

// The padded plane and the accumulators live on the thread's stack.
constexpr std::int64_t kStackBytes = 64 * 1024;

struct Geometry {
    std::int64_t hp, wp, slack, oh;  // padded rows and columns, floats read past the last row, output rows
};

Geometry geometry(const KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& w = b.input(1).shape;
    const auto padding = b.anchor().attrs.get_ints("padding", {0, 0});
    const auto dilation = b.anchor().attrs.get_ints("dilation", {1, 1});
    return {in[2] + 2 * padding[0], in[3] + 2 * padding[1], (w[3] - 1) * dilation[1], b.result().shape[2]};
}

}  // namespace

bool is_depthwise_stride1_conv(const KernelBuilder& b) {
    const ir::Node& conv = b.anchor();
    if (conv.op != ir::Op::Conv2d || b.input(0).shape.size() != 4) return false;
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& w = b.input(1).shape;
    const std::int64_t channels = in[1];
    if (conv.attrs.get_int("groups", 1) != channels || w[0] != channels || w[1] != 1 ||
        conv.attrs.get_ints("stride", {1, 1}) != std::vector<std::int64_t>{1, 1} || b.input(0).channel_block != 0 ||
        b.input(0).dtype != ir::DType::Float32 || b.result().dtype != ir::DType::Float32)
        return false;
    const Geometry g = geometry(b);
    return (g.hp * g.wp + g.slack + g.oh * g.wp) * 4 <= kStackBytes;
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
    s << "// depthwise, stride 1: each plane zero-padded once, then every tap is one pass over the plane\n"
      << "constexpr int64_t C = " << in[1] << ", H = " << in[2] << ", W = " << in[3] << ";  // input\n"
      << "constexpr int64_t OH = " << out[2] << ", OW = " << out[3] << ", KH = " << w[2] << ", KW = " << w[3]
      << ", PH = " << padding[0] << ", PW = " << padding[1] << ", DH = " << dilation[0] << ", DW = " << dilation[1]
      << ";\n"
      << "constexpr int64_t HP = " << g.hp << ", WP = " << g.wp << ";  // the padded plane\n"
      << b.parallel_for(2, ir::element_count(out) * w[2] * w[3])
      << "for (int64_t i0 = 0; i0 < " << out[0] << "; ++i0)\n"
      << "for (int64_t i1 = 0; i1 < C; ++i1) {\n"
      << "    // Taps of the last row's dropped columns read up to " << g.slack << " floats past the plane.\n"
      << "    alignas(64) float padded[HP * WP + " << g.slack << "] = {};\n"
      << "    const float* __restrict__ plane = " << x << " + (i0 * C + i1) * H * W;\n"
      << "    for (int64_t h = 0; h < H; ++h)\n"
      << "        for (int64_t c = 0; c < W; ++c) padded[(h + PH) * WP + PW + c] = plane[h * W + c];\n"
      << "    alignas(64) float acc[OH * WP] = {};\n"
      << "    for (int64_t kh = 0; kh < KH; ++kh)\n"
      << "        for (int64_t kw = 0; kw < KW; ++kw) {\n"
      << "            const float tap = " << weights << "[(i1 * KH + kh) * KW + kw];\n"
      << "            const float* __restrict__ from = padded + kh * DH * WP + kw * DW;\n"
      << "#pragma omp simd\n"
      << "            for (int64_t q = 0; q < OH * WP; ++q) acc[q] += tap * from[q];\n"
      << "        }\n"
      << "    for (int64_t i2 = 0; i2 < OH; ++i2)\n"
      << "#pragma omp simd\n"
      << "    for (int64_t i3 = 0; i3 < OW; ++i3) {\n"
      << "        float v = acc[i2 * WP + i3]" << (bias.empty() ? "" : " + " + bias + "[i1]") << ";\n"
      << indent(b.epilogue_and_store("v"), 8) << "    }\n"
      << "}\n";
}

}  // namespace sol::codegen::cpu
