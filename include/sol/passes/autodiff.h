// Reverse-mode differentiation for training: from the graph of a model's
// forward pass, the two graphs one training step runs. The framework runs
// the first in its forward() and the second in its backward(); it keeps the
// parameters and the optimizer.
//
// * forward: the model's outputs, then the activations the backward graph
//   needs ("saved" tensors). Cheap elementwise results are recomputed in the
//   backward graph instead of saved when their operands are saved anyway:
//   less memory held between the passes, nothing extra read.
// * backward: inputs named "grad:<k>" (the gradient of model output k),
//   "saved:<k>" (forward output k) or a forward input's own name (the input
//   itself is needed); the forward graph's parameters it reads, under the
//   same names; outputs the gradients listed in `gradient_of`.
//
// A node's int-list attribute "stop_gradient" names operand positions that
// count as constants: no gradient flows into them through that node. The
// frontend marks the batch mean inside BatchNorm's variance so: the gradient
// through it is sum(x - mean) * (...) = 0 exactly, so leaving it out changes
// no result and saves a pass over the activation (PyTorch's batch_norm
// backward formula has no such term either).
//
// Both graphs then go through the same fusion and code generation as any.
// Gradient rules follow PyTorch's autograd formulas op by op
// (src/passes/gradient_rules.cpp); an op without one is named in the error.
#pragma once

#include <string>
#include <vector>

#include "sol/ir/graph.h"

namespace sol::passes {

struct DifferentiatedGraphs {
    ir::Graph forward;
    ir::Graph backward;
    int model_outputs = 0;  // forward outputs [0, model_outputs) are the graph's own, the rest are saved
    // Per backward output: the parameter or input name it is the gradient
    // of. Names in `wrt` that no model output depends on have no gradient
    // (PyTorch's None) and are not listed.
    std::vector<std::string> gradient_of;
    int recomputed_nodes = 0;  // forward nodes the backward graph recomputes instead of reading saved values
};

// `wrt`: names of the parameters and inputs to differentiate with respect to.
// Only the first `differentiable_outputs` outputs get a gradient input (-1:
// all); later ones (BatchNorm's updated running statistics) are plain
// results of the forward graph.
// Throws sol::Error naming the op (and its origin in the model) that has no
// gradient rule, or a name in `wrt` that is neither a parameter nor an input.
DifferentiatedGraphs differentiate(const ir::Graph& graph, const std::vector<std::string>& wrt,
                                   int differentiable_outputs = -1);

}  // namespace sol::passes
