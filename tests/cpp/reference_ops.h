// Naive reference implementations (NCHW, float, contiguous) written straight
// from PyTorch's definitions, for checking generated kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace soltest::reference {

using Index = std::int64_t;

struct Conv2dParams {
    Index stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
};

// x [N,C,H,W], w [OC, C/groups, KH, KW], bias [OC] or empty.
inline std::vector<float> conv2d(const std::vector<float>& x, Index N, Index C, Index H, Index W,
                                 const std::vector<float>& w, Index OC, Index KH, Index KW,
                                 const std::vector<float>& bias, const Conv2dParams& p, Index& OH, Index& OW) {
    OH = (H + 2 * p.pad_h - p.dil_h * (KH - 1) - 1) / p.stride_h + 1;
    OW = (W + 2 * p.pad_w - p.dil_w * (KW - 1) - 1) / p.stride_w + 1;
    const Index icg = C / p.groups, ocg = OC / p.groups;
    std::vector<float> out(N * OC * OH * OW);
    for (Index n = 0; n < N; ++n)
        for (Index oc = 0; oc < OC; ++oc)
            for (Index oh = 0; oh < OH; ++oh)
                for (Index ow = 0; ow < OW; ++ow) {
                    double acc = bias.empty() ? 0.0 : bias[oc];
                    const Index g = oc / ocg;
                    for (Index ic = 0; ic < icg; ++ic)
                        for (Index kh = 0; kh < KH; ++kh)
                            for (Index kw = 0; kw < KW; ++kw) {
                                const Index ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
                                const Index iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                acc += double(x[((n * C + g * icg + ic) * H + ih) * W + iw]) *
                                       w[((oc * icg + ic) * KH + kh) * KW + kw];
                            }
                    out[((n * OC + oc) * OH + oh) * OW + ow] = static_cast<float>(acc);
                }
    return out;
}

struct PoolParams {
    Index kh, kw, sh, sw, ph = 0, pw = 0, dh = 1, dw = 1;
    bool ceil_mode = false;
    bool count_include_pad = true;
    Index divisor_override = 0;
};

// PyTorch's pooling_output_shape.
inline Index pool_out(Index in, Index k, Index s, Index p, Index d, bool ceil_mode) {
    Index out = (in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0)) / s + 1;
    if (ceil_mode && (out - 1) * s >= in + p) --out;
    return out;
}

// Max pooling; a NaN in the window wins, as in PyTorch.
inline std::vector<float> max_pool2d(const std::vector<float>& x, Index NC, Index H, Index W, const PoolParams& p,
                                     Index& OH, Index& OW) {
    OH = pool_out(H, p.kh, p.sh, p.ph, p.dh, p.ceil_mode);
    OW = pool_out(W, p.kw, p.sw, p.pw, p.dw, p.ceil_mode);
    std::vector<float> out(NC * OH * OW);
    for (Index c = 0; c < NC; ++c)
        for (Index oh = 0; oh < OH; ++oh)
            for (Index ow = 0; ow < OW; ++ow) {
                float best = -std::numeric_limits<float>::infinity();
                for (Index i = 0; i < p.kh; ++i)
                    for (Index j = 0; j < p.kw; ++j) {
                        const Index ih = oh * p.sh - p.ph + i * p.dh, iw = ow * p.sw - p.pw + j * p.dw;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        const float v = x[(c * H + ih) * W + iw];
                        if (std::isnan(best)) continue;
                        if (std::isnan(v) || v > best) best = v;
                    }
                out[(c * OH + oh) * OW + ow] = best;
            }
    return out;
}

// Average pooling, PyTorch's AvgPool2d divisor rules.
inline std::vector<float> avg_pool2d(const std::vector<float>& x, Index NC, Index H, Index W, const PoolParams& p,
                                     Index& OH, Index& OW) {
    OH = pool_out(H, p.kh, p.sh, p.ph, 1, p.ceil_mode);
    OW = pool_out(W, p.kw, p.sw, p.pw, 1, p.ceil_mode);
    std::vector<float> out(NC * OH * OW);
    for (Index c = 0; c < NC; ++c)
        for (Index oh = 0; oh < OH; ++oh)
            for (Index ow = 0; ow < OW; ++ow) {
                Index h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
                Index h1 = std::min(h0 + p.kh, H + p.ph), w1 = std::min(w0 + p.kw, W + p.pw);
                const Index padded = (h1 - h0) * (w1 - w0);
                h0 = std::max<Index>(h0, 0), w0 = std::max<Index>(w0, 0);
                h1 = std::min(h1, H), w1 = std::min(w1, W);
                double sum = 0;
                for (Index ih = h0; ih < h1; ++ih)
                    for (Index iw = w0; iw < w1; ++iw) sum += x[(c * H + ih) * W + iw];
                const Index divisor = p.divisor_override ? p.divisor_override
                                      : p.count_include_pad ? padded
                                                            : (h1 - h0) * (w1 - w0);
                out[(c * OH + oh) * OW + ow] = static_cast<float>(sum / divisor);
            }
    return out;
}

inline std::vector<float> adaptive_avg_pool2d(const std::vector<float>& x, Index NC, Index H, Index W, Index OH,
                                              Index OW) {
    std::vector<float> out(NC * OH * OW);
    for (Index c = 0; c < NC; ++c)
        for (Index oh = 0; oh < OH; ++oh)
            for (Index ow = 0; ow < OW; ++ow) {
                const Index h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
                const Index w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
                double sum = 0;
                for (Index ih = h0; ih < h1; ++ih)
                    for (Index iw = w0; iw < w1; ++iw) sum += x[(c * H + ih) * W + iw];
                out[(c * OH + oh) * OW + ow] = static_cast<float>(sum / ((h1 - h0) * (w1 - w0)));
            }
    return out;
}

// x [rows, K], w [N, K] -> [rows, N]
inline std::vector<float> linear(const std::vector<float>& x, Index rows, Index K, const std::vector<float>& w,
                                 Index N, const std::vector<float>& bias) {
    std::vector<float> out(rows * N);
    for (Index r = 0; r < rows; ++r)
        for (Index o = 0; o < N; ++o) {
            double acc = bias.empty() ? 0.0 : bias[o];
            for (Index k = 0; k < K; ++k) acc += double(x[r * K + k]) * w[o * K + k];
            out[r * N + o] = static_cast<float>(acc);
        }
    return out;
}

// Softmax over the middle axis of [outer, A, inner].
inline std::vector<float> softmax(const std::vector<float>& x, Index outer, Index A, Index inner, bool log) {
    std::vector<float> out(x.size());
    for (Index o = 0; o < outer; ++o)
        for (Index j = 0; j < inner; ++j) {
            double top = -INFINITY, sum = 0;
            for (Index a = 0; a < A; ++a) top = std::max<double>(top, x[(o * A + a) * inner + j]);
            for (Index a = 0; a < A; ++a) sum += std::exp(x[(o * A + a) * inner + j] - top);
            for (Index a = 0; a < A; ++a) {
                const double v = x[(o * A + a) * inner + j] - top;
                out[(o * A + a) * inner + j] = static_cast<float>(log ? v - std::log(sum) : std::exp(v) / sum);
            }
        }
    return out;
}

// Inference BatchNorm over axis 1 of [N, C, spatial].
inline std::vector<float> batch_norm(const std::vector<float>& x, Index N, Index C, Index spatial,
                                     const std::vector<float>& mean, const std::vector<float>& var,
                                     const std::vector<float>& gamma, const std::vector<float>& beta, double eps) {
    std::vector<float> out(x.size());
    for (Index n = 0; n < N; ++n)
        for (Index c = 0; c < C; ++c)
            for (Index s = 0; s < spatial; ++s) {
                const Index i = (n * C + c) * spatial + s;
                out[i] = static_cast<float>((x[i] - mean[c]) / std::sqrt(var[c] + eps) * gamma[c] + beta[c]);
            }
    return out;
}

inline std::vector<float> relu(std::vector<float> x) {
    for (float& v : x) v = v < 0 ? 0 : v;
    return x;
}

inline std::vector<float> sigmoid(std::vector<float> x) {
    for (float& v : x) v = 1.0f / (1.0f + std::exp(-v));
    return x;
}

}  // namespace soltest::reference
