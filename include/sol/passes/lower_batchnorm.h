// Rewrites each BatchNorm that could not be folded into x*scale + shift with
// per-channel scale and shift computed from the parameters, so it fuses as
// elementwise work into its producer.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

void lower_batchnorm(ir::Graph& graph);

}  // namespace sol::passes
