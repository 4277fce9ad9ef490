// Prologue of every generated CPU module. It is emitted as text in front of
// the generated kernels and also compiled on its own by the build
// (tests/cpp/prologue_compiles.cpp), so a typo here fails in CI.
//
// Scalar helpers follow PyTorch's definitions; NaN propagates where PyTorch
// propagates it (comparisons against NaN are false, so `x < 0 ? 0 : x` keeps
// a NaN x).
#include <cmath>
#include <cstdint>
#include <cstring>

template <typename T> static inline T sol_relu(T x) { return x < T(0) ? T(0) : x; }
// Lower bound first, then upper: with lo > hi the result is hi, as in torch.clamp.
template <typename T> static inline T sol_clamp(T x, T lo, T hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}
static inline float sol_sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
static inline float sol_silu(float x) { return x / (1.0f + std::exp(-x)); }
static inline float sol_gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f)); }
static inline float sol_gelu_tanh(float x) {
    return 0.5f * x * (1.0f + std::tanh(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}
static inline float sol_hardsigmoid(float x) { return sol_clamp(x + 3.0f, 0.0f, 6.0f) / 6.0f; }
static inline float sol_hardswish(float x) { return x * sol_clamp(x + 3.0f, 0.0f, 6.0f) / 6.0f; }
static inline float sol_rsqrt(float x) { return 1.0f / std::sqrt(x); }
// Training-mode dropout of element `index` on a call seeded `seed`: a
// counter-based hash (SplitMix64's finalizer) gives 24 uniform bits, so any
// thread, layout or fused kernel draws the same mask, and the backward
// redraws it instead of storing it. Kept elements are scaled by 1/(1-p).
static inline float sol_dropout(float x, int64_t seed, int64_t index, float p, float scale) {
    uint64_t z = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    return u < p ? 0.0f : x * scale;
}
// ReLU's backward from its output, as PyTorch's threshold_backward: the
// gradient passes where y > 0 (and where y is NaN).
static inline float sol_relu_grad(float dy, float y) { return y <= 0.0f ? 0.0f : dy; }
// GELU's backward, as PyTorch's gelu_backward: Phi(x) + x phi(x) for the erf
// form; the derivative of 0.5 x (1 + tanh(k (x + 0.044715 x^3))) for the
// tanh form, k = sqrt(2 / pi).
static inline float sol_gelu_grad(float dy, float x) {
    const float cdf = 0.5f * (1.0f + std::erf(x * 0.70710678118654752440f));
    const float pdf = std::exp(-0.5f * x * x) * 0.39894228040143267794f;
    return dy * (cdf + x * pdf);
}
static inline float sol_gelu_tanh_grad(float dy, float x) {
    const float k = 0.79788456080286535588f, kappa = 0.044715f;
    const float inner = k * (x + kappa * x * x * x);
    const float t = std::tanh(inner);
    const float left_derivative = 0.5f * (1.0f + t);
    const float right_derivative = 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * kappa * x * x);
    return dy * (left_derivative + right_derivative);
}
// Clamp's backward: torch.clamp passes the gradient where lo <= x <= hi (not
// for NaN); hardtanh and ReLU6 where lo < x < hi (and for NaN).
static inline float sol_clamp_grad_inclusive(float dy, float x, float lo, float hi) {
    return x >= lo && x <= hi ? dy : 0.0f;
}
static inline float sol_clamp_grad_exclusive(float dy, float x, float lo, float hi) {
    return x <= lo || x >= hi ? 0.0f : dy;
}
// Max pooling keeps the first NaN it meets, as PyTorch does.
static inline bool sol_takes_max(float candidate, float best) { return candidate > best || std::isnan(candidate); }

// Explicit SIMD for kernels walking channel blocks (NCHW16c, NCHW8c): one
// block of a pixel is one register of lanes. The vector extensions of
// GCC/Clang compile these to the ISA the module is built for (the host's,
// detected at run time: one zmm on AVX-512 for 16 floats, one ymm on AVX2 for
// 8). Same NaN rules as the scalar helpers above.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"  // static inline helpers: no calls across an ABI boundary
#endif
typedef float sol_f32x16 __attribute__((vector_size(64)));
typedef float sol_f32x8 __attribute__((vector_size(32)));
typedef float sol_f32x4 __attribute__((vector_size(16)));
template <typename V> static inline V sol_vload(const float* p) {
    V v;
    std::memcpy(&v, p, sizeof v);  // unaligned load (vmovups)
    return v;
}
template <typename V> static inline void sol_vstore(float* p, V v) { std::memcpy(p, &v, sizeof v); }
template <typename V> static inline V sol_vsplat(float x) { return V{} + x; }
// The sum of the lanes, by halving: log2(lanes) shuffles and adds (a lane-by-lane loop is one
// dependent chain of as many adds). __builtin_shufflevector: clang, and GCC from 12 on.
#if defined(__clang__) || __GNUC__ >= 12
static inline float sol_vsum(sol_f32x4 v) {
    v += __builtin_shufflevector(v, v, 2, 3, 0, 1);
    v += __builtin_shufflevector(v, v, 1, 0, 3, 2);
    return v[0];
}
static inline float sol_vsum(sol_f32x8 v) {
    return sol_vsum(__builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7));
}
static inline float sol_vsum(sol_f32x16 v) {
    return sol_vsum(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}
#else
template <typename V> static inline float sol_vsum(V v) {
    constexpr int lanes = sizeof(V) / sizeof(float);
    float x[lanes];
    std::memcpy(x, &v, sizeof v);
    for (int width = lanes / 2; width > 0; width /= 2)
        for (int k = 0; k < width; ++k) x[k] += x[k + width];
    return x[0];
}
#endif
template <typename V> static inline V sol_vrelu(V x) { return x < 0.0f ? V{} : x; }
template <typename V> static inline V sol_vclamp(V x, float lo, float hi) {
    x = x < lo ? sol_vsplat<V>(lo) : x;
    return x > hi ? sol_vsplat<V>(hi) : x;
}
template <typename V> static inline V sol_vrelu_grad(V dy, V y) { return y <= 0.0f ? V{} : dy; }
template <typename V> static inline V sol_vhardsigmoid(V x) { return sol_vclamp(x + 3.0f, 0.0f, 6.0f) / 6.0f; }
template <typename V> static inline V sol_vhardswish(V x) { return x * sol_vclamp(x + 3.0f, 0.0f, 6.0f) / 6.0f; }
