// A convolution of an image with few channels (a network's first layer, on
// the 3 colour channels) into channel-blocked output: NHWC, or NCHW16c/8c.
// Each output pixel's channels are registers, so a register tile of T pixels
// of an output row by every output channel stays in registers through all
// IC x KH x KW taps: per tap one load per register of weights (transposed to
// [IC][KH][KW][OC] by each thread, once per call) and one broadcast per pixel
// feed T x registers multiply-adds.
//
// Each work item is one output row. Its input rows (KH of them per channel)
// are first copied into a zero-padded buffer on the thread's stack, whatever
// the input's layout (NCHW or NHWC), so the tiles read every tap without
// bounds checks; the copy is a few thousand floats per row against the
// row's hundreds of thousands of multiply-adds.
//
// Why, beside oneDNN: with 3 input channels its kernels cannot fill their
// vector loops over input channels. At batch 8 on 2 threads, mobilenet_v2's
// first layer (3x3, stride 2, 3 -> 32 channels) took 0.60 ms in oneDNN and
// 0.48 here, shufflenet's (3 -> 24) 0.69 and 0.60, a 3x3 3 -> 64 layer at
// 224x224 (batch 2) 0.97 and 0.79; on the 7x7 stride-2 layer of the ResNets and
// googlenet the two are on par (about 4.0 ms). Autotuning times both and
// keeps the faster.
#include "kernel_builder.h"
#include "register_tile.h"

namespace sol::codegen::cpu {
namespace {

// The transposed weights and the staged input rows live on each thread's stack.
constexpr std::int64_t kMostWeightBytes = 48 * 1024;
constexpr std::int64_t kMostStagedBytes = 32 * 1024;
constexpr std::int64_t kMostInputChannels = 4;

// Input columns one output row reads, the padding included.
std::int64_t row_span(std::int64_t ow, std::int64_t kw, std::int64_t sw, std::int64_t dw) {
    return (ow - 1) * sw + (kw - 1) * dw + 1;
}

}  // namespace

bool is_few_input_channels_conv(const KernelBuilder& b) {
    if (!is_vector_conv_candidate(b)) return false;
    const ir::Node& conv = b.anchor();
    const ir::Tensor& in = b.input(0);
    const ir::Tensor& weight = b.input(1);
    const ir::Tensor& out = b.result();
    const int L = b.target().vector_width;
    const std::int64_t ic = in.shape[1], oc = out.shape[1];
    if (conv.attrs.get_int("groups", 1) != 1 || ic > kMostInputChannels) return false;
    if (in.channel_block != 0 && in.channel_block != ic) return false;  // NCHW or NHWC
    // NHWC with at most one 8-lane register after the full ones, or blocks of a register.
    const bool nhwc = out.channel_block == oc && register_tail(oc, L) >= 0;
    const bool register_blocks = out.channel_block == L && oc % L == 0;
    if (!nhwc && !register_blocks) return false;
    const auto stride = conv.attrs.get_ints("stride", {1, 1});
    const auto dilation = conv.attrs.get_ints("dilation", {1, 1});
    const std::int64_t span = row_span(out.shape[3], weight.shape[3], stride[1], dilation[1]);
    return ic * weight.shape[2] * weight.shape[3] * oc * 4 <= kMostWeightBytes &&
           ic * weight.shape[2] * span * 4 <= kMostStagedBytes;
}

void emit_few_input_channels_conv(KernelBuilder& b) {
    const ir::Node& conv = b.anchor();
    const ir::Tensor& in = b.input(0);
    const ir::Shape& weight = b.input(1).shape;
    const ir::Shape& out = b.result().shape;
    const int L = b.target().vector_width;
    const auto stride = conv.attrs.get_ints("stride", {1, 1});
    const auto padding = conv.attrs.get_ints("padding", {0, 0});
    const auto dilation = conv.attrs.get_ints("dilation", {1, 1});
    const std::int64_t IC = in.shape[1], OC = out[1], OW = out[3];
    const ChannelRegisters regs(OC, L);
    const std::int64_t T = tile_pixels(regs.count(), L, true);
    const bool has_bias = conv.inputs.size() == 3;
    const std::vector<std::string> chains = register_chains(b, regs);
    // Input channel ic of pixel (ih, iw) of image i0.
    const std::string input = in.channel_block == 0 ? "xs[((i0 * IC + ic) * H + ih) * W + iw]"
                                                    : "xs[((i0 * H + ih) * W + iw) * IC + ic]";
    auto tile = [&](std::int64_t count) {
        std::ostringstream s;
        s << "{  // " << count << " pixel(s) x " << regs.count() << " register(s) of channels\n"
          << indent(declare_accumulators(count, regs), 4)
          << "    for (int64_t ic = 0; ic < IC; ++ic)\n"
          << "    for (int64_t kh = 0; kh < KH; ++kh) {\n"
          << "        const float* __restrict__ x_row = staged + (ic * KH + kh) * SPAN + ow0 * SW;\n"
          << "        const float* __restrict__ w_row = transposed + (ic * KH + kh) * KW * OC;\n"
          << "        for (int64_t kw = 0; kw < KW; ++kw) {\n"
          << indent(load_weight_registers(regs, "w_row + kw * OC"), 12);
        for (std::int64_t t = 0; t < count; ++t)
            s << indent(multiply_add_pixel(t, regs, "x_row[" + std::to_string(t) + " * SW + kw * DW]"), 12);
        s << "        }\n"
          << "    }\n"
          << indent(store_tile(count, regs, has_bias ? "bias" : "", chains,
                               [](std::int64_t t) { return "const int64_t i3 = ow0 + " + std::to_string(t) + ";\n"; }),
                    4)
          << "}\n";
        return s.str();
    };
    auto& s = b.body;
    s << "// " << IC << " input channel(s): tiles of " << T << " pixels of an output row by every output channel\n"
      << "// in registers, over taps read from the row's zero-padded input rows\n"
      << "typedef " << (L == 16 ? "sol_f32x16" : "sol_f32x8") << " vec;\n"
      << "constexpr int64_t IC = " << IC << ", OC = " << OC << ", H = " << in.shape[2] << ", W = " << in.shape[3]
      << ", OH = " << out[2] << ", OW = " << OW << ";\n"
      << "constexpr int64_t KH = " << weight[2] << ", KW = " << weight[3] << ", SH = " << stride[0]
      << ", SW = " << stride[1] << ", PH = " << padding[0] << ", PW = " << padding[1] << ", DH = " << dilation[0]
      << ", DW = " << dilation[1] << ";\n"
      << "constexpr int64_t SPAN = " << row_span(OW, weight[3], stride[1], dilation[1])
      << ";  // input columns an output row reads, from column -PW on\n"
      << "constexpr int64_t COPIED = SPAN - PW < W ? SPAN - PW : W;  // of them inside the image\n"
      << "const float* __restrict__ xs = " << b.pointer(conv.inputs[0]) << ";\n"
      << "const float* __restrict__ ws = " << b.pointer(conv.inputs[1]) << ";\n";
    if (has_bias) s << "const float* __restrict__ bias = " << b.pointer(conv.inputs[2]) << ";\n";
    const std::string parallel = b.parallel_for(1, ir::element_count(out) * IC * weight[2] * weight[3]);
    s << (parallel.empty() ? "" : "#pragma omp parallel\n") << "{\n"
      << "    alignas(64) float transposed[IC * KH * KW * OC];  // [IC][KH][KW][OC]: a register of output channels per load\n"
      << "    for (int64_t oc = 0; oc < OC; ++oc)\n"
      << "        for (int64_t k = 0; k < IC * KH * KW; ++k) transposed[k * OC + oc] = ws[oc * IC * KH * KW + k];\n"
      << "    alignas(64) float staged[IC * KH * SPAN];  // [IC][KH][SPAN]: the output row's input rows, padded\n"
      << "#pragma omp for schedule(static)\n"
      << "    for (int64_t row = 0; row < " << out[0] << " * OH; ++row) {\n"
      << "        const int64_t i0 = row / OH, i2 = row % OH;\n"
      << "        for (int64_t ic = 0; ic < IC; ++ic)\n"
      << "        for (int64_t kh = 0; kh < KH; ++kh) {\n"
      << "            float* __restrict__ dst = staged + (ic * KH + kh) * SPAN;  // dst[j]: column j - PW\n"
      << "            const int64_t ih = i2 * SH - PH + kh * DH;\n"
      << "            if (ih < 0 || ih >= H) {\n"
      << "                for (int64_t j = 0; j < SPAN; ++j) dst[j] = 0.0f;\n"
      << "                continue;\n"
      << "            }\n"
      << "            for (int64_t j = 0; j < PW; ++j) dst[j] = 0.0f;\n"
      << "            for (int64_t iw = 0; iw < COPIED; ++iw) dst[PW + iw] = " << input << ";\n"
      << "            for (int64_t j = PW + COPIED; j < SPAN; ++j) dst[j] = 0.0f;\n"
      << "        }\n"
      << "        for (int64_t ow0 = 0; ow0 + " << T << " <= OW; ow0 += " << T << ")\n"
      << indent(tile(T), 8);
    if (OW % T != 0)
        s << "        {  // the row's last pixels\n"
          << "            const int64_t ow0 = " << OW / T * T << ";\n"
          << indent(tile(OW % T), 12) << "        }\n";
    s << "    }\n"
      << "}\n";
}

}  // namespace sol::codegen::cpu
