/* The context SOL hands to a custom layer's functions (sol.nn.CustomLayer):
 * the shapes of everything the function receives. C, installed with SOL
 * (sol.nn.include_dir()), for kernels written in C or C++:
 *
 *   #include <sol/custom_layer.h>
 *   void FwdX86(void* ctx, const float* X, const float* ParamA, float* Y) {
 *       const sol_tensor_info* x = sol_input(ctx, 0);
 *       for (int64_t i = 0; i < x->numel; ++i) ...
 *   }
 *
 * Forward:  (ctx, inputs..., parameters..., output)
 * Backward: (ctx, d_output, inputs..., parameters..., d_inputs..., d_parameters...)
 * Every tensor is dense float32, row-major (C order). Inputs and parameters
 * come in the order of forward()'s arguments and of the layer's parameter
 * registration. A backward's gradient buffers arrive zeroed; it writes (or
 * adds to) the gradient of every input and parameter, once per backward
 * pass; SOL accumulates them into .grad as PyTorch does.
 */
#ifndef SOL_CUSTOM_LAYER_H
#define SOL_CUSTOM_LAYER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SOL_CUSTOM_LAYER_VERSION 1
#define SOL_MAX_RANK 8

typedef struct sol_tensor_info {
    int32_t rank;
    int64_t shape[SOL_MAX_RANK]; /* the first `rank` entries */
    int64_t numel;               /* the product of the extents */
} sol_tensor_info;

typedef struct sol_custom_context {
    int32_t version; /* SOL_CUSTOM_LAYER_VERSION */
    int32_t input_count;
    int32_t parameter_count;
    int32_t output_count; /* 1 */
    const sol_tensor_info* inputs;
    const sol_tensor_info* parameters;
    const sol_tensor_info* outputs;
} sol_custom_context;

static inline const sol_tensor_info* sol_input(const void* ctx, int k) {
    return &((const sol_custom_context*)ctx)->inputs[k];
}
static inline const sol_tensor_info* sol_parameter(const void* ctx, int k) {
    return &((const sol_custom_context*)ctx)->parameters[k];
}
static inline const sol_tensor_info* sol_output(const void* ctx, int k) {
    return &((const sol_custom_context*)ctx)->outputs[k];
}

#ifdef __cplusplus
}
#endif

#endif /* SOL_CUSTOM_LAYER_H */
