// Readable text form of a graph, one node per line.
#pragma once

#include <string>

#include "sol/ir/graph.h"

namespace sol::ir {

std::string to_text(const Graph& graph);

}  // namespace sol::ir
