// Convolution and matrix-product kernels.
//
// conv2d computes one output row for a block of output channels per
// iteration: the block's accumulator rows stay in L1 while each input row is
// loaded once and used by every channel of the block, and the innermost loop
// over output columns has a fixed stride, so the host compiler vectorizes it.
// The valid column range of each kernel tap is precomputed, so the vector
// loop carries no bounds checks.
#include "kernel_builder.h"

#include <algorithm>

namespace sol::codegen::cpu {

void emit_conv2d(KernelBuilder& b) {
    const ir::Shape& in = b.input(0).shape;
    const ir::Shape& weight = b.input(1).shape;
    const ir::Shape& out = b.result().shape;
    const auto stride = b.anchor().attrs.get_ints("stride", {1, 1});
    const auto padding = b.anchor().attrs.get_ints("padding", {0, 0});
    const auto dilation = b.anchor().attrs.get_ints("dilation", {1, 1});
    const std::int64_t groups = b.anchor().attrs.get_int("groups", 1);
    const std::int64_t out_per_group = out[1] / groups;
    // Output channels computed together: each input row loaded once feeds
    // `block` accumulator rows. The largest of the target's choices that
    // divides the channels of a group.
    std::int64_t block = 1;
    for (std::int64_t candidate : {b.target().conv_channel_block, std::int64_t{4}, std::int64_t{2}})
        if (candidate > 0 && out_per_group % candidate == 0) {
            block = candidate;
            break;
        }
    // A 1x1, stride-1, unpadded convolution reads each input plane as one
    // contiguous row: vectorize over the whole plane instead of one row. Only
    // for planes whose accumulators fit comfortably on a thread's stack.
    const bool pointwise = weight[2] == 1 && weight[3] == 1 && stride == std::vector<std::int64_t>{1, 1} &&
                           padding == std::vector<std::int64_t>{0, 0} && out[2] * out[3] <= 4096;
    const std::int64_t W = pointwise ? in[2] * in[3] : in[3];
    const std::int64_t H = pointwise ? 1 : in[2];
    const std::int64_t OW = pointwise ? out[2] * out[3] : out[3];
    const std::int64_t OH = pointwise ? 1 : out[2];
    const std::int64_t KW = weight[3];
    const std::int64_t SW = stride.back(), PW = padding.back(), DW = dilation.back();

    const std::string x = b.pointer(b.anchor().inputs[0]);
    const std::string w = b.pointer(b.anchor().inputs[1]);
    const std::string bias = b.anchor().inputs.size() == 3 ? b.pointer(b.anchor().inputs[2]) : "";

    auto& s = b.body;
    s << "// " << (pointwise ? "pointwise: each plane is one row of OW = H*W columns; " : "")
      << "BLOCK output channels share each input row\n"
      << "constexpr int64_t C = " << in[1] << ", H = " << H << ", W = " << W << ";  // input\n"
      << "constexpr int64_t OC = " << out[1] << ", OH = " << OH << ", OW = " << OW << ";  // output\n"
      << "constexpr int64_t KH = " << weight[2] << ", KW = " << KW << ", SH = " << stride[0] << ", SW = " << SW
      << ", PH = " << padding[0] << ", PW = " << PW << ", DH = " << dilation[0] << ", DW = " << DW << ";\n"
      << "constexpr int64_t ICG = " << in[1] / groups << ", OCG = " << out_per_group
      << ", BLOCK = " << block << ";  // channels per group, per block\n"
      << column_ranges(W, OW, KW, SW, PW, DW)
      << b.parallel_for(3, ir::element_count(out) * weight[1] * weight[2] * KW)
      << "for (int64_t i0 = 0; i0 < " << out[0] << "; ++i0)\n"
      << "for (int64_t oc0 = 0; oc0 < OC; oc0 += BLOCK)\n"
      << "for (int64_t oh = 0; oh < OH; ++oh) {\n"
      << "    const int64_t group = oc0 / OCG;\n"
      << "    float acc[BLOCK][OW] = {};\n"
      << "    for (int64_t ic = 0; ic < ICG; ++ic) {\n"
      << "        const float* __restrict__ plane = " << x << " + (i0 * C + group * ICG + ic) * H * W;\n"
      << "        for (int64_t kh = 0; kh < KH; ++kh) {\n"
      << "            const int64_t ih = oh * SH - PH + kh * DH;\n"
      << "            if (ih < 0 || ih >= H) continue;\n"
      << "            const float* __restrict__ row = plane + ih * W;\n"
      << "            for (int64_t kw = 0; kw < KW; ++kw) {\n"
      << "                float tap[BLOCK];\n"
      << "                for (int64_t k = 0; k < BLOCK; ++k) tap[k] = " << w
      << "[(((oc0 + k) * ICG + ic) * KH + kh) * KW + kw];\n"
      << "#pragma omp simd\n"
      << "                for (int64_t ow = ow_lo[kw]; ow < ow_hi[kw]; ++ow) {\n"
      << "                    const float value = row[ow * SW + kw * DW - PW];\n";
    for (std::int64_t k = 0; k < block; ++k)
        s << "                    acc[" << k << "][ow] += tap[" << k << "] * value;\n";
    s << "                }\n"
      << "            }\n"
      << "        }\n"
      << "    }\n"
      << "    for (int64_t k = 0; k < BLOCK; ++k)\n"
      << "    for (int64_t ow = 0; ow < OW; ++ow) {\n"
      << "        // Output element (i0, i1, i2, i3) for the epilogue.\n"
      << "        const int64_t i1 = oc0 + k, i2 = " << (pointwise ? "ow / " + std::to_string(out[3]) : "oh")
      << ", i3 = " << (pointwise ? "ow % " + std::to_string(out[3]) : "ow") << ";\n"
      << "        (void)i2; (void)i3;\n"
      << "        float v = acc[k][ow]" << (bias.empty() ? "" : " + " + bias + "[i1]") << ";\n"
      << indent(b.epilogue_and_store("v"), 8) << "    }\n"
      << "}\n";
}

// Weights (floats) beyond one core's L2 (512 KiB).
constexpr std::int64_t kStreamedWeights = 128 * 1024;

void emit_linear(KernelBuilder& b) {
    const ir::Shape& out = b.result().shape;
    const std::size_t rank = out.size();
    const std::int64_t K = b.input(0).shape.back(), N = out.back(), L = b.target().vector_width;
    const std::string x = b.pointer(b.anchor().inputs[0]);
    const std::string w = b.pointer(b.anchor().inputs[1]);
    const std::string bias = b.anchor().inputs.size() == 3 ? b.pointer(b.anchor().inputs[2]) : "";
    const std::string last = "i" + std::to_string(rank - 1);
    // Row of x feeding this output element: the leading indices, flattened.
    std::string row = "0";
    std::int64_t stride = 1;
    for (std::size_t d = rank - 1; d-- > 0;) {
        row = "i" + std::to_string(d) + (stride == 1 ? "" : "*" + std::to_string(stride)) + " + " + row;
        stride *= out[d];
    }
    auto& s = b.body;
    s << "constexpr int64_t K = " << K << ";  // reduction length\n";
    if (L < 4 || K < L) {
        s << b.parallel_for(static_cast<int>(rank), ir::element_count(out) * K) << b.open_loops(out, 0, rank)
          << "{\n"
          << "    const float* __restrict__ xs = " << x << " + (" << row << ") * K;\n"
          << "    const float* __restrict__ ws = " << w << " + " << last << " * K;\n"
          << "    float v = 0.0f;\n"
          << "#pragma omp simd reduction(+ : v)\n"
          << "    for (int64_t k = 0; k < K; ++k) v += xs[k] * ws[k];\n"
          << (bias.empty() ? "" : "    v += " + bias + "[" + last + "];\n")
          << indent(b.epilogue_and_store("v"), 4) << "}\n";
        return;
    }
    // R output features at once, one vector accumulator each: every vector of x loaded feeds R
    // independent FMA chains (one dot product per output waits on the FMA latency), and the R
    // horizontal sums at the end overlap. Matters for small batches (batch 1: a matrix-vector
    // product), where oneDNN's blocked matrix product has little to block.
    constexpr std::int64_t R = 4;
    // Threads pay off when there are many vector steps (R FMAs of a vector each; the threshold
    // counts scalar steps), or when the weights are more than one core's L2 holds: a batch-1
    // layer then streams them from memory, and two cores stream twice as fast.
    const std::int64_t steps = ir::element_count(out) * K / (R * L), weights = N * K;
    const std::int64_t work = std::max(steps, weights >= kStreamedWeights ? b.target().parallel_threshold : 0);
    s << "typedef float vec __attribute__((vector_size(" << L * 4 << ")));\n"
      << "constexpr int64_t N = " << N << ", L = " << L << ", KV = " << K / L * L << ", R = " << R
      << ";  // outputs, lanes, vectorized part of K, outputs per pass\n"
      << b.parallel_for(static_cast<int>(rank), work)
      << "for (int64_t n0 = 0; n0 < N; n0 += R)  // outer: the R rows of weights stay in L1 for every row of x\n"
      << b.open_loops(out, 0, rank - 1) << "{\n"
      << "    const float* __restrict__ xs = " << x << " + (" << row << ") * K;\n"
      << "    const int64_t count = N - n0 < R ? N - n0 : R;\n"
      << "    float sums[R] = {};\n"
      << "    if (count == R) {\n"
      << "        const float* __restrict__ ws = " << w << " + n0 * K;\n"
      << "        vec a0 = {}, a1 = {}, a2 = {}, a3 = {};\n"
      << "        for (int64_t k = 0; k < KV; k += L) {\n"
      << "            const vec xv = sol_vload<vec>(xs + k);\n"
      << "            a0 += sol_vload<vec>(ws + k) * xv;\n"
      << "            a1 += sol_vload<vec>(ws + K + k) * xv;\n"
      << "            a2 += sol_vload<vec>(ws + 2 * K + k) * xv;\n"
      << "            a3 += sol_vload<vec>(ws + 3 * K + k) * xv;\n"
      << "        }\n"
      << "        sums[0] = sol_vsum(a0), sums[1] = sol_vsum(a1), sums[2] = sol_vsum(a2), sums[3] = sol_vsum(a3);\n"
      << "        for (int64_t k = KV; k < K; ++k)\n"
      << "            for (int64_t j = 0; j < R; ++j) sums[j] += xs[k] * ws[j * K + k];\n"
      << "    } else {  // the last outputs\n"
      << "        for (int64_t j = 0; j < count; ++j) {\n"
      << "            const float* __restrict__ ws = " << w << " + (n0 + j) * K;\n"
      << "            float v = 0.0f;\n"
      << "#pragma omp simd reduction(+ : v)\n"
      << "            for (int64_t k = 0; k < K; ++k) v += xs[k] * ws[k];\n"
      << "            sums[j] = v;\n"
      << "        }\n"
      << "    }\n"
      << "    for (int64_t j = 0; j < count; ++j) {\n"
      << "        const int64_t " << last << " = n0 + j;\n"
      << "        float v = sums[j]" << (bias.empty() ? "" : " + " + bias + "[" + last + "]") << ";\n"
      << indent(b.epilogue_and_store("v"), 8) << "    }\n"
      << "}\n";
}

}  // namespace sol::codegen::cpu
