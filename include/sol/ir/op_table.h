// The one table of operations SOL knows. Passes and code generators ask for
// traits, never for a list of names, so a new op only needs a row here, a
// shape rule and an emitter.
#pragma once

#include <cstdint>
#include <string_view>

namespace sol::ir {

enum Trait : std::uint32_t {
    Elementwise = 1u << 0,    // out[i] depends on in[i] only (with broadcasting)
    Reduction = 1u << 1,      // reduces along an axis
    Movement = 1u << 2,       // rearranges elements, computes nothing
    Contraction = 1u << 3,    // sums products (convolution, matrix product)
    Pooling = 1u << 4,        // windowed reduction over spatial axes
    Normalization = 1u << 5,  // batch statistics scale and shift
    FloatOnly = 1u << 6,      // defined for floating-point inputs only
    Lowered = 1u << 7,        // rewritten into other ops before code generation
};

// X(enum name, text name, min inputs, max inputs (-1: any), traits)
// dropout{p}(x, seed): training-mode dropout; `seed` is a per-call int64
// scalar input, and the mask a counter-based hash of (seed, element index),
// so it is the same in any kernel, layout or thread, and in the backward.
// mul_add(a, b, c) = a * b + c, broadcast as two binary ops (made by
// passes/form_multiply_add, so one elementwise chain reads a product).
// Gradient ops (made by passes/autodiff): relu_grad(dy, y) = y > 0 ? dy : 0,
// PyTorch's ReLU backward; clamp_grad{min, max, inclusive}(dy, x) passes dy
// where x lies within the bounds (inclusive: torch.clamp's rule; not:
// hardtanh's and ReLU6's, which exclude the bounds); gelu_grad{approximate}(dy, x)
// is GELU's backward (erf or tanh form, as PyTorch's); expand{shape}(x) broadcasts x to `shape` (the
// backward of a reduction); conv2d_backward_data(dy, w){conv attributes,
// input_shape} and conv2d_backward_weight(dy, x){conv attributes,
// weight_shape}; max_pool2d_backward(dy, x), avg_pool2d_backward(dy) and
// adaptive_avg_pool2d_backward(dy) with the forward pool's attributes and
// input_shape. The convolution gradients anchor no fused chain: oneDNN runs
// them alone, the chain (relu_grad, a gradient sum) as its own kernel.
// custom{<device>.library, <device>.forward, <device>.backward, input_count, shape, name}(inputs..., parameters...):
// a user's kernel (sol.nn.CustomLayer) from a shared library; the first
// `input_count` operands are the layer's inputs, the rest its parameters; the
// result has `shape`. custom_backward(dy, inputs..., parameters...) with the
// same attributes runs the user's backward: its result is every operand's
// gradient after dy, flattened and concatenated in operand order.
#define SOL_OP_TABLE(X)                                                              \
    X(Conv2d, "conv2d", 2, 3, Contraction | FloatOnly)                               \
    X(Linear, "linear", 2, 3, Contraction | FloatOnly)                               \
    X(BatchNorm, "batch_norm", 5, 5, Normalization | FloatOnly | Lowered)            \
    X(Relu, "relu", 1, 1, Elementwise)                                               \
    X(Relu6, "relu6", 1, 1, Elementwise | Lowered)                                   \
    X(Hardtanh, "hardtanh", 1, 1, Elementwise | Lowered)                             \
    X(Clamp, "clamp", 1, 1, Elementwise)                                             \
    X(Sigmoid, "sigmoid", 1, 1, Elementwise | FloatOnly)                             \
    X(Tanh, "tanh", 1, 1, Elementwise | FloatOnly)                                   \
    X(Gelu, "gelu", 1, 1, Elementwise | FloatOnly)                                   \
    X(Silu, "silu", 1, 1, Elementwise | FloatOnly)                                   \
    X(Hardswish, "hardswish", 1, 1, Elementwise | FloatOnly)                         \
    X(Hardsigmoid, "hardsigmoid", 1, 1, Elementwise | FloatOnly)                     \
    X(Neg, "neg", 1, 1, Elementwise)                                                 \
    X(Exp, "exp", 1, 1, Elementwise | FloatOnly)                                     \
    X(Log, "log", 1, 1, Elementwise | FloatOnly)                                     \
    X(Sqrt, "sqrt", 1, 1, Elementwise | FloatOnly)                                   \
    X(Rsqrt, "rsqrt", 1, 1, Elementwise | FloatOnly)                                 \
    X(Identity, "identity", 1, 1, Elementwise | Lowered)                             \
    X(Add, "add", 2, 2, Elementwise)                                                 \
    X(Sub, "sub", 2, 2, Elementwise)                                                 \
    X(Mul, "mul", 2, 2, Elementwise)                                                 \
    X(Div, "div", 2, 2, Elementwise)                                                 \
    X(MulAdd, "mul_add", 3, 3, Elementwise)                                          \
    X(Dropout, "dropout", 2, 2, Elementwise)                                         \
    X(ReluGrad, "relu_grad", 2, 2, Elementwise | FloatOnly)                          \
    X(ClampGrad, "clamp_grad", 2, 2, Elementwise | FloatOnly)                        \
    X(GeluGrad, "gelu_grad", 2, 2, Elementwise | FloatOnly)                          \
    X(Expand, "expand", 1, 1, Elementwise)                                           \
    X(Conv2dBackwardData, "conv2d_backward_data", 2, 2, FloatOnly)                   \
    X(Conv2dBackwardWeight, "conv2d_backward_weight", 2, 2, FloatOnly)               \
    X(MaxPool2dBackward, "max_pool2d_backward", 2, 2, FloatOnly)                     \
    X(AvgPool2dBackward, "avg_pool2d_backward", 1, 1, FloatOnly)                     \
    X(AdaptiveAvgPool2dBackward, "adaptive_avg_pool2d_backward", 1, 1, FloatOnly)    \
    X(MaxPool2d, "max_pool2d", 1, 1, Pooling | FloatOnly)                            \
    X(AvgPool2d, "avg_pool2d", 1, 1, Pooling | FloatOnly)                            \
    X(AdaptiveAvgPool2d, "adaptive_avg_pool2d", 1, 1, Pooling | FloatOnly)           \
    X(Reshape, "reshape", 1, 1, Movement)                                            \
    X(Permute, "permute", 1, 1, Movement)                                            \
    X(Concat, "concat", 1, -1, Movement)                                             \
    X(Slice, "slice", 1, 1, Movement)                                                \
    X(Mean, "mean", 1, 1, Reduction | FloatOnly)                                     \
    X(Sum, "sum", 1, 1, Reduction)                                                   \
    X(Softmax, "softmax", 1, 1, Reduction | FloatOnly)                               \
    X(LogSoftmax, "log_softmax", 1, 1, Reduction | FloatOnly)                        \
    X(Custom, "custom", 1, -1, FloatOnly)                                            \
    X(CustomBackward, "custom_backward", 2, -1, FloatOnly)

enum class Op : std::uint8_t {
#define SOL_OP_ENUM(id, text, min_inputs, max_inputs, traits) id,
    SOL_OP_TABLE(SOL_OP_ENUM)
#undef SOL_OP_ENUM
};

struct OpInfo {
    Op op;
    std::string_view name;
    int min_inputs;
    int max_inputs;  // -1: variadic
    std::uint32_t traits;
};

inline constexpr OpInfo kOpTable[] = {
#define SOL_OP_ROW(id, text, min_inputs, max_inputs, traits) \
    OpInfo{Op::id, text, min_inputs, max_inputs, static_cast<std::uint32_t>(traits)},
    SOL_OP_TABLE(SOL_OP_ROW)
#undef SOL_OP_ROW
};

inline constexpr std::size_t kOpCount = sizeof(kOpTable) / sizeof(kOpTable[0]);
static_assert(kOpCount == 47, "op table changed: update shape rules, emitters and tests");

constexpr const OpInfo& info(Op op) { return kOpTable[static_cast<std::size_t>(op)]; }
constexpr bool has_trait(Op op, Trait trait) { return (info(op).traits & trait) != 0; }
constexpr std::string_view name(Op op) { return info(op).name; }
// The convolution gradients: a library kernel where the device has one,
// else SOL's reference loop nests.
constexpr bool is_convolution_gradient(Op op) { return op == Op::Conv2dBackwardData || op == Op::Conv2dBackwardWeight; }
// A user's kernel (sol.nn.CustomLayer): always its own library call.
constexpr bool is_custom(Op op) { return op == Op::Custom || op == Op::CustomBackward; }

// Throws sol::Error listing the known ops when `text` names none.
Op parse_op(std::string_view text);

}  // namespace sol::ir
