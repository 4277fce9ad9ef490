// Removes arithmetic that does nothing: x*1, 1*x, x/1, x+0, 0+x, x-0 (only
// where broadcasting does not change the shape).
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

void fold_identity(ir::Graph& graph);

}  // namespace sol::passes
