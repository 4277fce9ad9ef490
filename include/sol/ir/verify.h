// Structural and type checks of a graph; run after every pass in tests and
// debug runs so a broken pass is caught where it broke.
#pragma once

#include <string>

#include "sol/ir/graph.h"

namespace sol::ir {

// Throws sol::Error starting with `context` (e.g. "after fold_batchnorm").
void verify(const Graph& graph, const std::string& context);

}  // namespace sol::ir
