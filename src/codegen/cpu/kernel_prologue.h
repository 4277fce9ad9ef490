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
// Max pooling keeps the first NaN it meets, as PyTorch does.
static inline bool sol_takes_max(float candidate, float best) { return candidate > best || std::isnan(candidate); }
