// Folds an inference BatchNorm into the convolution that feeds it: the
// convolution's weight and bias become w*s and (b-mean)*s+beta with
// s = gamma/sqrt(var+eps). The folded values are computed by graph nodes from
// the parameters (never baked in), so they follow load_state_dict.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

void fold_batchnorm(ir::Graph& graph);

}  // namespace sol::passes
