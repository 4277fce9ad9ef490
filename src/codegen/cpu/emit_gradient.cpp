// Backward kernels of convolution and pooling (made by passes/autodiff).
// Plain loop nests over row-major tensors, parallel over the planes (or
// filters) they write, so no two threads add into the same element. They
// follow the forward emitters' window rules (column_ranges, the pooling
// window helpers), so forward and backward agree on which taps exist.
#include "kernel_builder.h"

#include <cstdint>
#include <limits>

#include "sol/error.h"

namespace sol::codegen::cpu {
namespace {

struct ConvGeometry {
    std::int64_t N, C, H, W, OC, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW, G;
};

ConvGeometry conv_geometry(const ir::Node& node, const ir::Shape& x, const ir::Shape& w, const ir::Shape& dy) {
    const auto stride = node.attrs.get_ints("stride", {1, 1});
    const auto padding = node.attrs.get_ints("padding", {0, 0});
    const auto dilation = node.attrs.get_ints("dilation", {1, 1});
    return {x[0], x[1], x[2], x[3], dy[1], dy[2], dy[3], w[2], w[3], stride[0], stride[1],
            padding[0], padding[1], dilation[0], dilation[1], node.attrs.get_int("groups", 1)};
}

std::string conv_constants(const ConvGeometry& g) {
    return "constexpr int64_t N = " + std::to_string(g.N) + ", C = " + std::to_string(g.C) + ", H = " +
           std::to_string(g.H) + ", W = " + std::to_string(g.W) + ";  // input\n" +
           "constexpr int64_t OC = " + std::to_string(g.OC) + ", OH = " + std::to_string(g.OH) + ", OW = " +
           std::to_string(g.OW) + ";  // output\n" + "constexpr int64_t KH = " + std::to_string(g.KH) + ", KW = " +
           std::to_string(g.KW) + ", SH = " + std::to_string(g.SH) + ", SW = " + std::to_string(g.SW) +
           ", PH = " + std::to_string(g.PH) + ", PW = " + std::to_string(g.PW) + ", DH = " + std::to_string(g.DH) +
           ", DW = " + std::to_string(g.DW) + ";\n" + "constexpr int64_t ICG = " + std::to_string(g.C / g.G) +
           ", OCG = " + std::to_string(g.OC / g.G) + ";  // channels per group\n" +
           column_ranges(g.W, g.OW, g.KW, g.SW, g.PW, g.DW);
}

// dx[n, c, ih, iw] = sum over the output pixels whose window reads (ih, iw)
// of dy * w: one input row at a time, each tap scattering a strided run of
// output columns into it.
void emit_conv2d_backward_data(KernelBuilder& b) {
    const ir::Node& node = b.anchor();
    const ir::Shape& dy = b.input(0).shape;
    const ir::Shape& w = b.input(1).shape;
    const ConvGeometry g = conv_geometry(node, b.result().shape, w, dy);
    const std::string grad = b.pointer(node.inputs[0]), weight = b.pointer(node.inputs[1]);
    b.body << "// Gradient of the input of a convolution: each input row gathers the output rows that read it.\n"
           << conv_constants(g) << b.parallel_for(2, ir::element_count(b.result().shape) * g.KH * g.KW * (g.OC / g.G))
           << "for (int64_t i0 = 0; i0 < N; ++i0)\n"
           << "for (int64_t i1 = 0; i1 < C; ++i1) {\n"
           << "    const int64_t group = i1 / ICG, c = i1 % ICG;\n"
           << "    for (int64_t i2 = 0; i2 < H; ++i2) {\n"
           << "        float row[W] = {};\n"
           << "        for (int64_t kh = 0; kh < KH; ++kh) {\n"
           << "            const int64_t th = i2 + PH - kh * DH;  // oh * SH when output row oh reads this row\n"
           << "            if (th < 0 || th % SH != 0 || th / SH >= OH) continue;\n"
           << "            const int64_t oh = th / SH;\n"
           << "            for (int64_t oc = group * OCG; oc < (group + 1) * OCG; ++oc) {\n"
           << "                const float* __restrict__ dy_row = " << grad << " + ((i0 * OC + oc) * OH + oh) * OW;\n"
           << "                for (int64_t kw = 0; kw < KW; ++kw) {\n"
           << "                    const float tap = " << weight << "[((oc * ICG + c) * KH + kh) * KW + kw];\n"
           << "                    for (int64_t ow = ow_lo[kw]; ow < ow_hi[kw]; ++ow)\n"
           << "                        row[ow * SW - PW + kw * DW] += tap * dy_row[ow];\n"
           << "                }\n"
           << "            }\n"
           << "        }\n"
           << "        for (int64_t i3 = 0; i3 < W; ++i3) {\n"
           << "            float v = row[i3];\n"
           << indent(b.epilogue_and_store("v"), 12) << "        }\n"
           << "    }\n"
           << "}\n";
}

// dw[oc, c, kh, kw] = sum over images and output pixels of dy * the input
// pixel that tap reads: one filter per iteration, its taps accumulated in
// registers over whole output rows.
void emit_conv2d_backward_weight(KernelBuilder& b) {
    const ir::Node& node = b.anchor();
    const ir::Shape& dy = b.input(0).shape;
    const ir::Shape& x = b.input(1).shape;
    const ConvGeometry g = conv_geometry(node, x, b.result().shape, dy);
    const std::string grad = b.pointer(node.inputs[0]), input = b.pointer(node.inputs[1]);
    b.body << "// Gradient of the weights of a convolution: each filter tap sums dy * input over the batch.\n"
           << conv_constants(g) << b.parallel_for(2, ir::element_count(dy) * g.KH * g.KW * (g.C / g.G))
           << "for (int64_t i0 = 0; i0 < OC; ++i0)\n"
           << "for (int64_t i1 = 0; i1 < ICG; ++i1) {\n"
           << "    const int64_t c = (i0 / OCG) * ICG + i1;  // the input channel\n"
           << "    float acc[KH][KW] = {};\n"
           << "    for (int64_t n = 0; n < N; ++n)\n"
           << "    for (int64_t oh = 0; oh < OH; ++oh) {\n"
           << "        const float* __restrict__ dy_row = " << grad << " + ((n * OC + i0) * OH + oh) * OW;\n"
           << "        for (int64_t kh = 0; kh < KH; ++kh) {\n"
           << "            const int64_t ih = oh * SH - PH + kh * DH;\n"
           << "            if (ih < 0 || ih >= H) continue;\n"
           << "            const float* __restrict__ x_row = " << input << " + ((n * C + c) * H + ih) * W;\n"
           << "            for (int64_t kw = 0; kw < KW; ++kw) {\n"
           << "                float sum = 0.0f;\n"
           << "#pragma omp simd reduction(+ : sum)\n"
           << "                for (int64_t ow = ow_lo[kw]; ow < ow_hi[kw]; ++ow) sum += dy_row[ow] * x_row[ow * SW - PW + kw * DW];\n"
           << "                acc[kh][kw] += sum;\n"
           << "            }\n"
           << "        }\n"
           << "    }\n"
           << "    for (int64_t i2 = 0; i2 < KH; ++i2)\n"
           << "    for (int64_t i3 = 0; i3 < KW; ++i3) {\n"
           << "        float v = acc[i2][i3];\n"
           << indent(b.epilogue_and_store("v"), 8) << "    }\n"
           << "}\n";
}

// Pooling gradients, one input plane (n, c) per iteration: constants of
// both planes and the window, threads over the planes, `dx` (the plane of
// the result, zeroed: taps add to it) and `g` (the plane of the output
// gradient). The caller closes the plane loop.
void open_gradient_planes(KernelBuilder& b) {
    const ir::Node& node = b.anchor();
    const ir::Shape& dy = b.input(0).shape;
    const ir::Shape& x = b.result().shape;
    auto& s = b.body;
    s << "constexpr int64_t C = " << x[1] << ", H = " << x[2] << ", W = " << x[3] << ";  // input\n"
      << "constexpr int64_t OH = " << dy[2] << ", OW = " << dy[3] << ";  // output\n";
    if (node.op != ir::Op::AdaptiveAvgPool2dBackward) s << window_constants(node, x, dy);
    s << b.parallel_for(2, ir::element_count(x)) << "for (int64_t i0 = 0; i0 < " << x[0] << "; ++i0)\n"
      << "for (int64_t i1 = 0; i1 < C; ++i1) {\n"
      << "    float* __restrict__ dx = out + (i0 * C + i1) * H * W;\n"
      << "    const float* __restrict__ g = " << b.pointer(node.inputs[0]) << " + (i0 * C + i1) * OH * OW;\n"
      << "    for (int64_t k = 0; k < H * W; ++k) dx[k] = 0.0f;\n";
}

// The input gradient of max pooling: each output's gradient goes to the tap
// PyTorch's forward records (the first maximum in window order; a later NaN
// replaces it; the first tap when all are -inf). For a row of outputs the
// taps are visited in window order, each tap for the whole row at once over
// the outputs it reaches (ow_lo/ow_hi): no bounds checks, the row's loads
// are strided, not gathered, and many windows run side by side (one
// window's taps are a chain of dependent compares). Then the gradients are
// added in order: neighbouring windows may pick the same tap.
void emit_max_pool_backward(KernelBuilder& b) {
    const ir::Shape& x = b.result().shape;
    const char* index_type = x[2] * x[3] <= std::numeric_limits<std::int32_t>::max() ? "int32_t" : "int64_t";
    auto& s = b.body;
    open_gradient_planes(b);
    s << "    const float* __restrict__ plane = " << b.pointer(b.anchor().inputs[1]) << " + (i0 * C + i1) * H * W;\n"
      << "    " << index_type << " winner[OW];  // in the plane; -1: no tap yet\n"
      << "    float best[OW];\n"
      << "    for (int64_t i2 = 0; i2 < OH; ++i2) {\n"
      << "        for (int64_t i3 = 0; i3 < OW; ++i3) {\n"
      << "            winner[i3] = -1;\n"
      << "            best[i3] = -INFINITY;\n"
      << "        }\n"
      << "        for (int64_t kh = 0; kh < KH; ++kh) {\n"
      << "            const int64_t ih = i2 * SH - PH + kh * DH;\n"
      << "            if (ih < 0 || ih >= H) continue;\n"
      << "            const float* __restrict__ row = plane + ih * W;\n"
      << "            for (int64_t kw = 0; kw < KW; ++kw)\n"
      << "#pragma omp simd\n"
      << "                for (int64_t i3 = ow_lo[kw]; i3 < ow_hi[kw]; ++i3) {\n"
      << "                    const int64_t iw = i3 * SW - PW + kw * DW;\n"
      << "                    const float candidate = row[iw];\n"
      << "                    const bool take = (winner[i3] < 0) | sol_takes_max(candidate, best[i3]);\n"
      << "                    winner[i3] = take ? static_cast<" << index_type << ">(ih * W + iw) : winner[i3];\n"
      << "                    best[i3] = take ? candidate : best[i3];\n"
      << "                }\n"
      << "        }\n"
      << "        for (int64_t i3 = 0; i3 < OW; ++i3)\n"
      << "            if (winner[i3] >= 0) dx[winner[i3]] += g[i2 * OW + i3];\n"
      << "    }\n"
      << "}\n";
}

// Average and adaptive average pooling spread each output's gradient over
// its window by the forward's divisor.
void emit_pooling_backward(KernelBuilder& b) {
    const ir::Node& node = b.anchor();
    auto& s = b.body;
    open_gradient_planes(b);
    s << "    for (int64_t i2 = 0; i2 < OH; ++i2)\n"
      << "    for (int64_t i3 = 0; i3 < OW; ++i3) {\n";
    if (node.op == ir::Op::AvgPool2dBackward) {
        s << indent(average(node, "g[i2 * OW + i3]"), 8)
          << "        for (int64_t ih = h0; ih < h1; ++ih)\n"
          << "            for (int64_t iw = w0; iw < w1; ++iw) dx[ih * W + iw] += v;\n";
    } else {
        s << indent(kAdaptiveWindow, 4)
          << "        const float v = g[i2 * OW + i3] / static_cast<float>((h1 - h0) * (w1 - w0));\n"
          << "        for (int64_t ih = h0; ih < h1; ++ih)\n"
          << "            for (int64_t iw = w0; iw < w1; ++iw) dx[ih * W + iw] += v;\n";
    }
    s << "    }\n"
      << "}\n";
}

}  // namespace

void emit_gradient(KernelBuilder& b) {
    for (int input : b.anchor().inputs)
        if (b.graph().tensor(input).channel_block != 0)
            throw Error("internal: a backward kernel was given a channel-blocked operand");
    switch (b.anchor().op) {
        case ir::Op::Conv2dBackwardData: return emit_conv2d_backward_data(b);
        case ir::Op::Conv2dBackwardWeight: return emit_conv2d_backward_weight(b);
        case ir::Op::MaxPool2dBackward: return emit_max_pool_backward(b);
        default: return emit_pooling_backward(b);
    }
}

}  // namespace sol::codegen::cpu
