#include "sol/ir/op_table.h"

#include <string>

#include "sol/error.h"

namespace sol::ir {

Op parse_op(std::string_view text) {
    for (const OpInfo& row : kOpTable)
        if (row.name == text) return row.op;
    std::string known;
    for (const OpInfo& row : kOpTable) known += (known.empty() ? "" : ", ") + std::string(row.name);
    throw Error("unknown op '" + std::string(text) + "'; SOL's ops are: " + known);
}

}  // namespace sol::ir
