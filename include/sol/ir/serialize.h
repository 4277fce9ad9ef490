// A graph as text and back, exactly: tensor ids, node order, clusters and
// layouts survive, so kernel calls that name tensor ids and node indices
// still fit the graph read back. A deployed library carries its graph this
// way (deploy/), and rebuilds its runtime from it without a compiler.
#pragma once

#include <string>
#include <string_view>

#include "sol/ir/graph.h"

namespace sol::ir {

std::string serialize(const Graph& graph);
// Throws sol::Error naming what is malformed; the graph read back is verified.
Graph deserialize(std::string_view text);

}  // namespace sol::ir
