// Removes nodes whose results never reach a graph output, and the parameters
// only they read.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

void eliminate_dead_code(ir::Graph& graph);

}  // namespace sol::passes
