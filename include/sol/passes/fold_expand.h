// Keeps broadcasts implicit: `expand` (the backward of a sum or mean) makes
// a full-size tensor of a small one, and an elementwise op broadcasts its
// operands anyway. Backward graphs are full of `expand(g) * c` read by
// another elementwise op: without this pass each is a kernel writing a whole
// tensor of repeated values, then read back.
//
// Two rewrites, to a fixed point: an elementwise op whose only operand that
// is not a single value is an expand runs on the expand's input, expanded
// afterwards (so the op touches the small tensor); and an elementwise op
// reading an expand whose other operands already give the full shape reads
// the expand's input directly.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

// Returns how many reads of an expand were replaced by its input.
int fold_expand(ir::Graph& graph);

}  // namespace sol::passes
