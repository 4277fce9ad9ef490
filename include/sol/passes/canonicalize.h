// Rewrites ops into SOL's canonical forms: relu6 and hardtanh become clamp,
// identity ops disappear, negative axes become positive.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

void canonicalize(ir::Graph& graph);

}  // namespace sol::passes
