// A 1x1, stride-1, unpadded, ungrouped convolution on NHWC images with few
// channels: a matrix product out[p][oc] = sum_ic x[p][ic] * w[oc][ic] over
// the pixels p, each pixel's input channels contiguous. A register tile of T
// pixels by the output channels' registers stays in registers for the whole
// input channel loop: per input channel one broadcast of x feeds every
// register of the pixel, and each weight register (the transposed weights,
// [IC][OC], copied once per call by each thread) feeds T multiply-adds.
//
// Why, beside oneDNN: its brgemm kernels are made for many channels. On
// MNASNet's 16 -> 48 channel layer at 112x112, batch 8, one thread, it took
// 1.5x as long as this loop (1.20 ms vs 0.79); on most other few-channel
// layers the two are within 10% either way. Autotuning times both and keeps
// the faster.
#include "kernel_builder.h"
#include "register_tile.h"

namespace sol::codegen::cpu {
namespace {

// The transposed weights live on each thread's stack.
constexpr std::int64_t kMostWeightBytes = 32 * 1024;

// One tile: pixels p0 .. p0 + count - 1 (p0 a variable), every output channel.
std::string tile_code(std::int64_t count, const ChannelRegisters& regs, const std::string& bias,
                      const std::vector<std::string>& chains) {
    std::ostringstream s;
    s << "{  // " << count << " pixel(s) x " << regs.count() << " register(s) of channels\n"
      << indent(declare_accumulators(count, regs), 4)
      << "    for (int64_t ic = 0; ic < IC; ++ic) {\n"
      << indent(load_weight_registers(regs, "transposed + ic * OC"), 8);
    for (std::int64_t t = 0; t < count; ++t)
        s << indent(multiply_add_pixel(t, regs, "xs[(p0 + " + std::to_string(t) + ") * IC + ic]"), 8);
    s << "    }\n"
      << indent(store_tile(count, regs, bias, chains,
                           [](std::int64_t t) {
                               return "const int64_t p = p0 + " + std::to_string(t) +
                                      ", i0 = p / (OH * OW), i2 = p / OW % OH, i3 = p % OW;\n";
                           }),
                4)
      << "}\n";
    return s.str();
}

}  // namespace

bool is_blocked_pointwise_conv(const KernelBuilder& b) {
    if (!is_vector_conv_candidate(b)) return false;
    const ir::Node& conv = b.anchor();
    const ir::Tensor& in = b.input(0);
    const ir::Tensor& weight = b.input(1);
    const ir::Tensor& out = b.result();
    const int L = b.target().vector_width;
    if (weight.shape[2] != 1 || weight.shape[3] != 1 || conv.attrs.get_int("groups", 1) != 1 ||
        conv.attrs.get_ints("stride", {1, 1}) != std::vector<std::int64_t>{1, 1} ||
        conv.attrs.get_ints("padding", {0, 0}) != std::vector<std::int64_t>{0, 0})
        return false;
    const std::int64_t ic = in.shape[1], oc = out.shape[1];
    // NHWC in and out; the output channels in whole registers, at most one of 8 after them.
    if (in.channel_block != ic || out.channel_block != oc) return false;
    if (register_tail(oc, L) < 0) return false;
    return ic * oc * 4 <= kMostWeightBytes;
}

void emit_blocked_pointwise_conv(KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& out = b.result().shape;
    const int L = b.target().vector_width;
    const std::int64_t IC = in[1], OC = out[1], P = out[0] * out[2] * out[3];
    const ChannelRegisters regs(OC, L);
    const std::int64_t T = tile_pixels(regs.count(), L, false);
    const std::string x = b.pointer(b.anchor().inputs[0]);
    const std::string w = b.pointer(b.anchor().inputs[1]);
    const bool has_bias = b.anchor().inputs.size() == 3;
    const std::vector<std::string> chains = register_chains(b, regs);
    auto& s = b.body;
    s << "// pointwise on NHWC pixels: tiles of " << T << " pixels by every output channel in registers,\n"
      << "// one broadcast of x per pixel and input channel\n"
      << "typedef " << (L == 16 ? "sol_f32x16" : "sol_f32x8") << " vec;\n"
      << "constexpr int64_t IC = " << IC << ", OC = " << OC << ", P = " << P << ", OH = " << out[2] << ", OW = " << out[3]
      << ";  // P: pixels of every image\n"
      << "const float* __restrict__ xs = " << x << ";\n";
    if (has_bias) s << "const float* __restrict__ bias = " << b.pointer(b.anchor().inputs[2]) << ";\n";
    const std::string parallel = b.parallel_for(1, P * IC * OC);
    s << (parallel.empty() ? "" : "#pragma omp parallel\n") << "{\n"
      << "    alignas(64) float transposed[IC * OC];  // [IC][OC]: a register of output channels per load\n"
      << "    for (int64_t oc = 0; oc < OC; ++oc)\n"
      << "        for (int64_t ic = 0; ic < IC; ++ic) transposed[ic * OC + oc] = " << w << "[oc * IC + ic];\n"
      << "#pragma omp for schedule(static)\n"
      << "    for (int64_t tile = 0; tile < " << P / T << "; ++tile) {\n"
      << "        const int64_t p0 = tile * " << T << ";\n"
      << indent(tile_code(T, regs, has_bias ? "bias" : "", chains), 8) << "    }\n";
    if (P % T != 0)
        s << "#pragma omp single\n"
          << "    {  // the last pixels\n"
          << "        const int64_t p0 = " << P / T * T << ";\n"
          << indent(tile_code(P % T, regs, has_bias ? "bias" : "", chains), 8) << "    }\n";
    s << "}\n";
}

}  // namespace sol::codegen::cpu
