// Output shape and dtype of an op from its inputs and attributes.
#pragma once

#include <vector>

#include "sol/ir/graph.h"

namespace sol::ir {

struct TensorType {
    Shape shape;
    DType dtype;
};

// Throws sol::ShapeError with a message naming the op and what does not fit;
// the caller prefixes the origin.
TensorType infer_type(Op op, const std::vector<const Tensor*>& inputs, const Attributes& attrs);

// Numpy-style broadcast of two shapes (right-aligned); throws ShapeError.
Shape broadcast_shapes(const Shape& a, const Shape& b);

// Spatial output size of a pooling/convolution window (PyTorch's formula).
std::int64_t window_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                std::int64_t padding, std::int64_t dilation, bool ceil_mode);

}  // namespace sol::ir
