// The gradient rule of every differentiable op, for passes/autodiff: given a
// forward node and the gradient of its output, append nodes computing the
// gradient of each of its inputs. Formulas follow PyTorch's autograd
// (derivatives.yaml), so results match it to rounding.
#pragma once

#include <vector>

#include "sol/ir/graph.h"

namespace sol::passes {

// `node` is a copy (the graph's node list grows). Per input of it: the id of its gradient, or -1 where `wanted[i]` is
// false or the input has none (an integer operand). Throws sol::Error naming
// the op and its origin when the op has no rule.
std::vector<int> input_gradients(ir::Graph& graph, const ir::Node& node, int output_gradient,
                                 const std::vector<bool>& wanted);

}  // namespace sol::passes
