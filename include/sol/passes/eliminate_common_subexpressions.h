// Computes each value once: a node with the same op, operands and
// attributes as an earlier one reads the earlier one's result instead
// (autodiff writes d(x*x) as g*x + g*x, for one). Custom layers are kept:
// a user's kernel may not be a pure function.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

// Returns how many nodes were removed.
int eliminate_common_subexpressions(ir::Graph& graph);

}  // namespace sol::passes
