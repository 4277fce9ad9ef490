// Elementwise kernels are chains: one running value, every other operand
// read from memory. add(mul(a, b), q) with q computed by another elementwise
// chain has two computed operands, so mul(a, b) became a kernel of its own
// that writes a whole tensor, read back once by the add. As one ternary op,
// mul_add(a, b, q) = a * b + q, the chain runs through q and reads a and b.
// BatchNorm's input gradient is such a sum (g * scale plus the variance
// term computed from x): one pass instead of two writes and a read.
//
// Only where the addend's chain does not start at a convolution, matrix
// product or pooling: oneDNN's post-ops cannot add a product of two other
// tensors, and such an epilogue would move the layer off the library.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

// Returns how many adds became mul_add.
int form_multiply_add(ir::Graph& graph);

}  // namespace sol::passes
