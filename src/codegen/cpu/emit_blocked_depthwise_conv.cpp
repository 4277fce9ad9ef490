// A depthwise convolution (one filter per channel) on channel-blocked images:
// NHWC (one block of all channels) or NCHW16c / NCHW8c. A pixel's channels
// are contiguous, so one register holds L neighbouring channels of a pixel and
// every tap is one multiply-add per register: no lane loop, no gathers.
//
// Each work item is one output row of one group of L channels. Its columns go
// in register tiles of T pixels: per tap one weight register feeds T
// multiply-adds, and the T accumulators are independent chains that keep the
// FMA units busy. Which taps of a column fall into the padding is known when
// the kernel is generated (the sizes are constants), so the columns next to
// the edges get tiles with those taps left out, and the interior a loop of
// full tiles with no bounds checks at all.
//
// The weights are laid out [C][KH][KW]; a register of L channels of one tap
// is strided in that layout, so each thread copies its group's taps into
// [KH][KW][L] on its stack when it moves to another group (items are handed
// out group by group).
//
// Why not oneDNN alone: on MNASNet's NHWC layers its depthwise kernel took
// up to 1.7x as long as this one on one thread (72 channels, 56x56: 54 us vs
// 35-39), though not on 7x7 planes, where copying the taps costs a third of
// the work. Autotuning times both and keeps the faster.
#include "kernel_builder.h"

namespace sol::codegen::cpu {
namespace {

struct Window {
    std::int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    std::int64_t h, w;    // input rows, columns
    std::int64_t oh, ow;  // output rows, columns
};

Window window_of(const KernelBuilder& b) {
    const ir::Node& conv = b.anchor();
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& weight = b.input(1).shape;
    const ir::Shape& out = b.result().shape;
    const auto stride = conv.attrs.get_ints("stride", {1, 1});
    const auto padding = conv.attrs.get_ints("padding", {0, 0});
    const auto dilation = conv.attrs.get_ints("dilation", {1, 1});
    return {weight[2], weight[3], stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
            in[2],     in[3],     out[2],    out[3]};
}

// Whether tap column kw of output column ow reads inside the image.
bool inside(const Window& k, std::int64_t ow, std::int64_t kw) {
    const std::int64_t iw = ow * k.sw + kw * k.dw - k.pw;
    return iw >= 0 && iw < k.w;
}

bool all_taps_inside(const Window& k, std::int64_t ow) {
    for (std::int64_t kw = 0; kw < k.kw; ++kw)
        if (!inside(k, ow, kw)) return false;
    return true;
}

// Columns whose every tap lies inside the image: [first, end) (empty when none does).
std::pair<std::int64_t, std::int64_t> interior_columns(const Window& k) {
    std::int64_t first = 0;
    while (first < k.ow && !all_taps_inside(k, first)) ++first;
    std::int64_t end = first;
    while (end < k.ow && all_taps_inside(k, end)) ++end;
    return {first, end};
}

// Pixels per register tile: T accumulators, the tap's weight and a loaded
// input fit the register file (32 vector registers on AVX-512, 16 on AVX2).
std::int64_t tile_columns(int vector_width) { return vector_width >= 16 ? 8 : 4; }

// Border tiles are unrolled column by column; beyond this many border columns
// (kernels much wider than the image) the library keeps the layer.
constexpr std::int64_t kMostBorderColumns = 32;
// A group's taps live on the thread's stack (a deployed library's host
// program may keep threads' stacks small): kernels up to 16x16 here.
constexpr std::int64_t kMostTapBytes = 16 * 1024;

// Code of one register tile: output columns `first` + 0 .. count-1 of row i2,
// group c0. `known_first` >= 0 names the first column when it is a constant:
// taps reading padding are then left out. The input pixel (ih, iw) of the
// group is at `plane` + (ih * W + iw) * PIX.
std::string tile_code(const Window& k, const std::string& first, std::int64_t known_first,
                      std::int64_t count, bool bias, const std::string& chain) {
    std::ostringstream s;
    s << "{  // columns " << (known_first >= 0 ? std::to_string(known_first) : first) << " .. +" << count - 1 << "\n";
    s << "    vec";
    for (std::int64_t t = 0; t < count; ++t) s << (t ? ", " : " ") << "acc" << t << " = {}";
    s << ";\n"
      << "    for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {\n"
      << "        const float* __restrict__ row = plane + (i2 * SH - PH + kh * DH) * W * PIX;\n"
      << "        const float* __restrict__ tap = taps + kh * KW * L;\n";
    for (std::int64_t kw = 0; kw < k.kw; ++kw) {
        std::ostringstream fmas;
        for (std::int64_t t = 0; t < count; ++t) {
            if (known_first >= 0 && !inside(k, known_first + t, kw)) continue;
            // Input column (first + t) * SW + kw * DW - PW.
            const std::int64_t shift = t * k.sw + kw * k.dw - k.pw;
            const std::string column = known_first >= 0 ? std::to_string(known_first * k.sw + shift)
                                                        : first + " * SW + " + std::to_string(shift);
            fmas << " acc" << t << " += w * sol_vload<vec>(row + (" << column << ") * PIX);";
        }
        if (!fmas.str().empty())
            s << "        { const vec w = sol_vload<vec>(tap + " << kw << " * L);" << fmas.str() << " }\n";
    }
    s << "    }\n";
    for (std::int64_t t = 0; t < count; ++t) {
        s << "    {\n"
          << "        const int64_t i3 = " << (known_first >= 0 ? std::to_string(known_first + t) : first + " + " + std::to_string(t))
          << ";\n"
          << "        vec v = acc" << t << (bias ? " + bias" : "") << ";\n"
          << indent(chain, 8) << "    }\n";
    }
    s << "}\n";
    return s.str();
}

// The row loop body for one group c0 of L channels: every column of output
// row i2, border tiles unrolled, the interior in a loop of full tiles.
std::string row_code(const Window& k, std::int64_t T, bool bias, const std::string& chain) {
    const auto [lo, hi] = interior_columns(k);
    std::ostringstream s;
    auto border = [&](std::int64_t from, std::int64_t to) {
        for (std::int64_t c = from; c < to; c += T) s << tile_code(k, "", c, std::min(T, to - c), bias, chain);
    };
    border(0, lo);
    const std::int64_t full = (hi - lo) / T;
    if (full > 0)
        s << "for (int64_t ow = " << lo << "; ow < " << lo + full * T << "; ow += " << T << ")\n"
          << tile_code(k, "ow", -1, T, bias, chain);
    border(lo + full * T, hi);  // the interior's last columns: no padding, constants
    border(std::max(hi, lo), k.ow);
    return s.str();
}

// The loops over the groups [first, first + groups) of L lanes each: items
// (image, group, row), the group's taps copied when a thread reaches it.
std::string groups_code(KernelBuilder& b, const Window& k, std::int64_t L, std::int64_t first_group,
                        std::int64_t groups, const std::string& x, const std::string& weights,
                        const std::string& bias_pointer) {
    b.use_channel_block_loops(static_cast<int>(L));
    const std::string chain = b.register_chain_and_store();
    const ir::Tensor& in = b.input(0);
    std::ostringstream s;
    s << "{  // " << groups << " group(s) of " << L << " channels\n"
      << "    typedef " << b.vector_type() << " vec;\n"
      << "    constexpr int64_t L = " << L << ";\n"
      << "    alignas(64) float taps[KH * KW * L];\n"
      << "    int64_t copied = -1;  // the group whose taps are in `taps`\n"
      << "#pragma omp for collapse(3) schedule(static)\n"
      << "    for (int64_t i0 = 0; i0 < N; ++i0)\n"
      << "    for (int64_t c0 = " << first_group << "; c0 < " << first_group + groups << "; ++c0)\n"
      << "    for (int64_t i2 = 0; i2 < OH; ++i2) {\n"
      << "        if (c0 != copied) {\n"
      << "            for (int64_t c1 = 0; c1 < L; ++c1)\n"
      << "                for (int64_t k = 0; k < KH * KW; ++k) taps[k * L + c1] = " << weights
      << "[(c0 * L + c1) * KH * KW + k];\n"
      << "            copied = c0;\n"
      << "        }\n"
      << "        // Pixel (ih, iw) of this image's group: plane + (ih * W + iw) * PIX.\n"
      << "        const float* __restrict__ plane = " << x << " + "
      << layout_offset(in, {"i0", "c0 * L", "0", "0"}) << ";\n";
    if (!bias_pointer.empty()) s << "        const vec bias = sol_vload<vec>(" << bias_pointer << " + c0 * L);\n";
    s << "        // The kernel rows inside the image.\n" << indent(kWindowRowsInside, 8)
      << indent(row_code(k, tile_columns(b.target().vector_width), !bias_pointer.empty(), chain), 8)
      << "    }\n"
      << "}\n";
    return s.str();
}

}  // namespace

bool is_blocked_depthwise_conv(const KernelBuilder& b) {
    if (!is_vector_conv_candidate(b)) return false;
    const ir::Tensor& in = b.input(0);
    const ir::Tensor& weight = b.input(1);
    const ir::Tensor& out = b.result();
    const std::int64_t channels = in.shape[1];
    const int L = b.target().vector_width;
    if (b.anchor().attrs.get_int("groups", 1) != channels || weight.shape[0] != channels || weight.shape[1] != 1)
        return false;
    // Blocks of whole registers, or NHWC with at most one register of 8 after them.
    for (const ir::Tensor* t : {&in, &out}) {
        const std::int64_t block = t->channel_block;
        if (block <= 0 || (block % L != 0 && !(block == channels && register_tail(channels, L) >= 0))) return false;
    }
    const Window k = window_of(b);
    const auto [lo, hi] = interior_columns(k);
    return k.ow - (hi - lo) <= kMostBorderColumns && k.kh * k.kw * L * 4 <= kMostTapBytes;
}

void emit_blocked_depthwise_conv(KernelBuilder& b) {
    const ir::Tensor& in = b.input(0);
    const std::int64_t channels = in.shape[1];
    const Window k = window_of(b);
    const int L = b.target().vector_width;
    const std::int64_t tail = register_tail(channels, L);  // >= 0: is_blocked_depthwise_conv
    const std::string x = b.pointer(b.anchor().inputs[0]);
    const std::string weights = b.pointer(b.anchor().inputs[1]);
    const std::string bias = b.anchor().inputs.size() == 3 ? b.pointer(b.anchor().inputs[2]) : "";

    auto& s = b.body;
    s << "// depthwise on channel-blocked pixels: registers of neighbouring channels, tiles of output\n"
      << "// columns, taps into the padding left out at generation time\n"
      << "constexpr int64_t N = " << in.shape[0] << ", H = " << k.h << ", W = " << k.w
      << ", PIX = " << in.channel_block << ";  // input; PIX: floats per pixel of a block\n"
      << "constexpr int64_t OH = " << k.oh << ", KH = " << k.kh << ", KW = " << k.kw << ", SH = " << k.sh
      << ", SW = " << k.sw << ", PH = " << k.ph << ", DH = " << k.dh << ";\n"
      << "(void)SW;\n";
    const std::string parallel = b.parallel_for(1, ir::element_count(b.result().shape) * k.kh * k.kw);
    s << (parallel.empty() ? "" : "#pragma omp parallel\n") << "{\n";
    if (channels >= L) s << indent(groups_code(b, k, L, 0, (channels - tail) / L, x, weights, bias), 4);
    if (tail > 0)  // NHWC's last channels: one register of 8, numbered in groups of 8
        s << indent(groups_code(b, k, tail, (channels - tail) / tail, 1, x, weights, bias), 4);
    s << "}\n";
}

}  // namespace sol::codegen::cpu
