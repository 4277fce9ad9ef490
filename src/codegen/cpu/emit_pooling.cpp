// Max, average and adaptive-average pooling over NCHW or channel-blocked
// input, following PyTorch's window and divisor rules (ceil_mode, padding,
// count_include_pad, divisor_override).
#include "kernel_builder.h"

namespace sol::codegen::cpu {

const char* const kWindowRowsInside =
    "int64_t kh_lo = 0, kh_hi = KH;\n"
    "while (kh_lo < KH && i2 * SH - PH + kh_lo * DH < 0) ++kh_lo;\n"
    "while (kh_hi > kh_lo && i2 * SH - PH + (kh_hi - 1) * DH >= H) --kh_hi;\n";

const char* const kAdaptiveWindow =
    "    const int64_t h0 = (i2 * H) / OH, h1 = ((i2 + 1) * H + OH - 1) / OH;\n"
    "    const int64_t w0 = (i3 * W) / OW, w1 = ((i3 + 1) * W + OW - 1) / OW;\n";

std::string average(const ir::Node& node, const std::string& sum) {
    const std::int64_t divisor_override = node.attrs.get_int("divisor_override", 0);
    const bool count_include_pad = node.attrs.get_int("count_include_pad", 1) != 0;
    const std::string divisor = divisor_override ? std::to_string(divisor_override)
                                : count_include_pad ? "padded_size"
                                                    : "(h1 - h0) * (w1 - w0)";
    return "int64_t h0 = i2 * SH - PH, w0 = i3 * SW - PW;\n"
           "int64_t h1 = h0 + KH < H + PH ? h0 + KH : H + PH, w1 = w0 + KW < W + PW ? w0 + KW : W + PW;\n"
           "const int64_t padded_size = (h1 - h0) * (w1 - w0);\n"
           "(void)padded_size;\n"
           "h0 = h0 < 0 ? 0 : h0; w0 = w0 < 0 ? 0 : w0; h1 = h1 > H ? H : h1; w1 = w1 > W ? W : w1;\n"
           "float v = " + sum + " / static_cast<float>(" + divisor + ");\n";
}

std::string window_constants(const ir::Node& node, const ir::Shape& in, const ir::Shape& out) {
    const auto kernel = node.attrs.get_ints("kernel");
    const auto stride = node.attrs.get_ints("stride", kernel);
    const auto padding = node.attrs.get_ints("padding", {0, 0});
    const bool max = node.op == ir::Op::MaxPool2d || node.op == ir::Op::MaxPool2dBackward;
    const auto dilation = max ? node.attrs.get_ints("dilation", {1, 1}) : std::vector<std::int64_t>{1, 1};
    return "constexpr int64_t KH = " + std::to_string(kernel.front()) + ", KW = " + std::to_string(kernel.back()) +
           ", SH = " + std::to_string(stride.front()) + ", SW = " + std::to_string(stride.back()) +
           ", PH = " + std::to_string(padding.front()) + ", PW = " + std::to_string(padding.back()) +
           ", DH = " + std::to_string(dilation.front()) + ", DW = " + std::to_string(dilation.back()) + ";\n" +
           column_ranges(in[3], out[3], kernel.back(), stride.back(), padding.back(), dilation.back());
}

namespace {

// The end of a blocked pooling kernel's pixel: register `acc` through the fused chain into the
// output, as one vector where the chain has vector forms (a max needs no divisor per pixel), else
// lane by lane; closes the pixel's loop. `acc` holds lanes ck * L .. ck * L + L - 1 of the block
// (all B of them when `whole_block`).
std::string store_pooled(KernelBuilder& b, bool max, const ir::Node& node, bool whole_block) {
    if (const std::string chain = max && whole_block ? b.vector_chain_and_store(1, true) : ""; !chain.empty())
        return "        " + b.vector_type() + " v = acc;\n" + indent(chain, 8) + "    }\n";
    return "        for (int64_t l = 0; l < L; ++l) {\n"
           "            const int64_t c1 = " + std::string(whole_block ? "l" : "ck * L + l") + ", i1 = c0 * B + c1;\n"
           "            (void)i1;\n" +
           indent(max ? "float v = acc[l];\n" : average(node, "acc[l]"), 12) +
           indent(b.epilogue_and_store("v"), 12) + "        }\n    }\n";
}

// Lanes per register for a block of B channels: the widest power of two up
// to the vector width that divides B (all of an NCHW16c block, a sixteenth of
// a 256-channel NHWC pixel, two of ShuffleNet's 58).
int register_lanes(int block, int vector_width) {
    int lanes = 1;
    while (lanes * 2 <= vector_width && block % (lanes * 2) == 0) lanes *= 2;
    return lanes;
}

// Taps per output element (the work estimate for threading).
std::int64_t window_size(const ir::Node& node) {
    const auto kernel = node.attrs.get_ints("kernel");
    return kernel.front() * kernel.back();
}

// The part tables of a concat the kernel reads through (depth-first fusion).
std::string prologue_tables(KernelBuilder& b) {
    const ir::Node& first = b.graph().nodes()[b.cluster().front()];
    return b.has_prologue() && first.op == ir::Op::Concat ? b.declare_concat_parts(first) : "";
}

// Channel-blocked input (NCHW{B}c): each tap is one B-lane vector. Read from
// memory, each output pixel's block is reduced in one register; read through
// a fused concat, the block's accumulators for an output row stay in L1.
void emit_blocked_pooling(KernelBuilder& b) {
    const ir::Node& node = b.anchor();
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& out = b.result().shape;
    const int block = b.source_block();
    b.use_channel_block_loops(block);
    auto& s = b.body;
    s << "constexpr int64_t CB = " << in[1] / block << ", H = " << in[2] << ", W = " << in[3] << ", B = " << block
      << ";  // input: CB blocks of B channels\n"
      << "constexpr int64_t OH = " << out[2] << ", OW = " << out[3] << ";  // output\n"
      << prologue_tables(b);
    // The input's plane of block c0 of image i0, when it is read from memory.
    const std::string plane =
        b.has_prologue() ? ""
                         : "    const float* __restrict__ plane = " + b.pointer(node.inputs[0]) +
                               " + (i0 * CB + c0) * H * W * B;\n";
    // The lane c1 of input pixel (ih, iw) of block c0.
    auto tap = [&](const std::string& ih, const std::string& iw) {
        return b.has_prologue() ? b.input_value({"i0", "(c0 * B + c1)", ih, iw}, "c0", "c1")
                                : "plane[(" + ih + " * W + " + iw + ") * B + c1]";
    };
    if (node.op == ir::Op::AdaptiveAvgPool2d) {
        s << b.parallel_for(2, ir::element_count(in)) << b.open_loops(out, 0, 1)
          << "for (int64_t c0 = 0; c0 < CB; ++c0)\n" << b.open_loops(out, 2, 4) << "{\n"
          << plane << kAdaptiveWindow << "    float sum[B] = {};\n"
          << "    for (int64_t ih = h0; ih < h1; ++ih)\n"
          << "        for (int64_t iw = w0; iw < w1; ++iw)\n"
          << "#pragma omp simd\n"
          << "            for (int64_t c1 = 0; c1 < B; ++c1) sum[c1] += " << tap("ih", "iw") << ";\n"
          << "    for (int64_t c1 = 0; c1 < B; ++c1) {\n"
          << "        const int64_t i1 = c0 * B + c1;\n"
          << "        (void)i1;\n"
          << "        float v = sum[c1] / static_cast<float>((h1 - h0) * (w1 - w0));\n"
          << indent(b.epilogue_and_store("v"), 8) << "    }\n"
          << "}\n";
        return;
    }
    const bool max = node.op == ir::Op::MaxPool2d;
    if (!b.has_prologue()) {
        // Read from memory: each output pixel's block reduced in one register over its taps (one
        // load per tap), rather than B-lane accumulators in memory updated tap by tap.
        // A block wider than a register (NHWC) is reduced a register of lanes at a time.
        const int lanes = register_lanes(block, b.target().vector_width);
        const bool whole_block = lanes == block;
        const std::string chunk = whole_block ? "" : " + ck * L";
        // The output row's pixels. `track_nans`: a max that notes the lanes that met a NaN tap.
        auto pixels = [&](bool track_nans) {
            std::string declare, accumulate, finish;
            if (!max) {
                accumulate = "acc += candidate;\n";
            } else {
                accumulate = "acc = candidate > acc ? candidate : acc;  // one vmaxps; ties keep the earlier tap\n";
                if (track_nans) {
                    declare = "lanes nan = {};  // lanes that met a NaN\n";
                    accumulate += "nan |= candidate != candidate;\n";
                    finish = "acc = nan ? sol_vsplat<vec>(NAN) : acc;  // a NaN tap wins, as in PyTorch\n";
                } else {
                    declare = "vec sum = {};  // NaN where a tap is\n";
                    accumulate += "sum += candidate;\n";
                    finish = "probe += sum;\n";
                }
            }
            return "    for (int64_t i3 = 0; i3 < OW; ++i3)" +
                   std::string(whole_block ? " {\n"
                                           : "\n    for (int64_t ck = 0; ck < B / L; ++ck) {  // registers of the pixel\n") +
                   "        vec acc = sol_vsplat<vec>(" + (max ? "-INFINITY" : "0.0f") + ");\n" + indent(declare, 8) +
                   "        // Column i3 is valid for every tap kw from ow_lo[0] (the largest) to ow_hi[KW - 1].\n"
                   "        const bool inside = i3 >= ow_lo[0] && i3 < ow_hi[KW - 1];\n"
                   "        for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {\n"
                   "            const float* __restrict__ row = plane + (i2 * SH - PH + kh * DH) * W * B;\n"
                   "            for (int64_t kw = 0; kw < KW; ++kw) {\n"
                   "                const int64_t iw = i3 * SW - PW + kw * DW;\n"
                   "                if (!inside && (iw < 0 || iw >= W)) continue;\n"
                   "                const vec candidate = sol_vload<vec>(row + iw * B" + chunk + ");\n" +
                   indent(accumulate, 16) + "            }\n        }\n" + indent(finish, 8) +
                   store_pooled(b, max, node, whole_block);
        };
        s << window_constants(node, in, out) << "constexpr int64_t L = " << lanes << ";  // lanes per register\n"
          << "typedef float vec __attribute__((vector_size(" << lanes * 4 << ")));\n"
          << "typedef int lanes __attribute__((vector_size(" << lanes * 4 << ")));  // comparison results\n"
          << b.parallel_for(3, ir::element_count(out) * window_size(node)) << b.open_loops(out, 0, 1)
          << "for (int64_t c0 = 0; c0 < CB; ++c0)\n" << b.open_loops(out, 2, 3) << "{\n" << plane
          << "    // The window rows inside the image.\n" << indent(kWindowRowsInside, 4);
        if (!max) {
            s << pixels(false) << "}\n";
            return;
        }
        // A max with vmaxps alone loses a NaN tap (PyTorch's result is NaN): tracking NaNs per tap
        // costs two more instructions a tap, a quarter of the kernel's time. Instead the row sums
        // its taps, which is NaN if any tap was (or if infinities of both signs met), and only
        // then is the row computed again, tracking NaNs. Pooling never writes in place, so the
        // second pass overwrites the first one's stores.
        s << "    vec probe = {};  // the sum of the row's taps\n" << pixels(false)
          << "    float total = 0.0f;  // once per row: lane by lane\n"
          << "    for (int64_t l = 0; l < L; ++l) total += probe[l];\n"
          << "    if (__builtin_expect(std::isnan(total), 0)) {\n" << indent(pixels(true), 4) << "    }\n"
          << "}\n";
        return;
    }
    s << window_constants(node, in, out)
      << b.parallel_for(3, ir::element_count(out) * window_size(node)) << b.open_loops(out, 0, 1)
      << "for (int64_t c0 = 0; c0 < CB; ++c0)\n" << b.open_loops(out, 2, 3) << "{\n" << plane
      << "    float acc[OW][B];\n"
      << "    for (int64_t i3 = 0; i3 < OW; ++i3)\n"
      << "        for (int64_t c1 = 0; c1 < B; ++c1) acc[i3][c1] = " << (max ? "-INFINITY" : "0.0f") << ";\n"
      << "    for (int64_t kh = 0; kh < KH; ++kh) {\n"
      << "        const int64_t ih = i2 * SH - PH + kh * DH;\n"
      << "        if (ih < 0 || ih >= H) continue;\n"
      << "        for (int64_t kw = 0; kw < KW; ++kw)\n"
      << "            for (int64_t i3 = ow_lo[kw]; i3 < ow_hi[kw]; ++i3)\n"
      << "#pragma omp simd\n"
      << "                for (int64_t c1 = 0; c1 < B; ++c1) {\n"
      << "                    const float candidate = " << tap("ih", "(i3 * SW + kw * DW - PW)") << ";\n"
      << (max ? "                    acc[i3][c1] = sol_takes_max(candidate, acc[i3][c1]) ? candidate : acc[i3][c1];\n"
              : "                    acc[i3][c1] += candidate;\n")
      << "                }\n"
      << "    }\n"
      << "    for (int64_t i3 = 0; i3 < OW; ++i3)\n"
      << "        for (int64_t c1 = 0; c1 < B; ++c1) {\n"
      << "            const int64_t i1 = c0 * B + c1;\n"
      << "            (void)i1;\n"
      << indent(max ? "float v = acc[i3][c1];\n" : average(node, "acc[i3][c1]"), 12)
      << indent(b.epilogue_and_store("v"), 12) << "        }\n"
      << "}\n";
}

}  // namespace

void emit_pooling(KernelBuilder& b) {
    if (b.source_block() > 0) return emit_blocked_pooling(b);
    const ir::Node& node = b.anchor();
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& out = b.result().shape;
    auto& s = b.body;
    s << "constexpr int64_t C = " << in[1] << ", H = " << in[2] << ", W = " << in[3] << ";  // input\n"
      << "constexpr int64_t OH = " << out[2] << ", OW = " << out[3] << ";  // output\n"
      << prologue_tables(b);
    // The input's plane of channel i1 of image i0, when it is read from memory.
    const std::string plane = b.has_prologue() ? ""
                                               : "    const float* __restrict__ plane = " + b.pointer(node.inputs[0]) +
                                                     " + (i0 * C + i1) * H * W;\n";
    auto tap = [&](const std::string& ih, const std::string& iw) {
        return b.has_prologue() ? b.input_value({"i0", "i1", ih, iw}) : "plane[" + ih + " * W + " + iw + "]";
    };

    if (node.op == ir::Op::AdaptiveAvgPool2d) {
        s << b.parallel_for(4, ir::element_count(in)) << b.open_loops(out, 0, 4) << "{\n"
          << plane << kAdaptiveWindow
          << "    float sum = 0.0f;\n"
          << "    for (int64_t ih = h0; ih < h1; ++ih)\n"
          << "        for (int64_t iw = w0; iw < w1; ++iw) sum += " << tap("ih", "iw") << ";\n"
          << "    float v = sum / static_cast<float>((h1 - h0) * (w1 - w0));\n"
          << indent(b.epilogue_and_store("v"), 4) << "}\n";
        return;
    }
    // Max and average pooling compute one output row per iteration, like
    // conv2d: accumulators for the row, each kernel tap a branch-free,
    // vectorizable pass over the output columns it reaches. Each element still
    // sees its taps in PyTorch's order (row by row), so sums and NaN handling
    // match.
    const bool max = node.op == ir::Op::MaxPool2d;
    s << window_constants(node, in, out)
      << b.parallel_for(3, ir::element_count(out) * window_size(node)) << b.open_loops(out, 0, 3) << "{\n" << plane
      << "    float acc[OW];\n"
      << "    for (int64_t i3 = 0; i3 < OW; ++i3) acc[i3] = " << (max ? "-INFINITY" : "0.0f") << ";\n"
      << "    for (int64_t kh = 0; kh < KH; ++kh) {\n"
      << "        const int64_t ih = i2 * SH - PH + kh * DH;\n"
      << "        if (ih < 0 || ih >= H) continue;\n"
      << "        for (int64_t kw = 0; kw < KW; ++kw)\n"
      << "#pragma omp simd\n"
      << "            for (int64_t i3 = ow_lo[kw]; i3 < ow_hi[kw]; ++i3) {\n"
      << "                const float candidate = " << tap("ih", "(i3 * SW + kw * DW - PW)") << ";\n"
      << (max ? "                acc[i3] = sol_takes_max(candidate, acc[i3]) ? candidate : acc[i3];\n"
              : "                acc[i3] += candidate;\n")
      << "            }\n"
      << "    }\n"
      << "    for (int64_t i3 = 0; i3 < OW; ++i3) {\n";
    s << indent(max ? "float v = acc[i3];\n" : average(node, "acc[i3]"), 8);
    s << indent(b.epilogue_and_store("v"), 8) << "    }\n"
      << "}\n";
}

}  // namespace sol::codegen::cpu
