#include "sol/ir/print.h"

#include <sstream>

namespace sol::ir {
namespace {

std::string type_text(const Tensor& t) {
    std::string text = std::string(short_name(t.dtype)) + to_string(t.shape);
    return t.channel_block ? text + " NCHW" + std::to_string(t.channel_block) + "c" : text;
}

std::string operand_text(const Tensor& t) {
    if (t.kind == TensorKind::Constant) {
        std::ostringstream out;
        out.precision(9);
        out << t.value;
        return out.str();
    }
    return "%" + std::to_string(t.id);
}

}  // namespace

std::string to_text(const Graph& graph) {
    std::ostringstream out;
    out << "graph {\n";
    for (int id : graph.inputs())
        out << "  input %" << id << " \"" << graph.tensor(id).name << "\": " << type_text(graph.tensor(id)) << '\n';
    for (int id : graph.parameters())
        out << "  param %" << id << " \"" << graph.tensor(id).name << "\": " << type_text(graph.tensor(id)) << '\n';
    for (const Node& node : graph.nodes()) {
        const Tensor& result = graph.tensor(node.output);
        out << "  %" << result.id << " = " << name(node.op) << '(';
        for (std::size_t i = 0; i < node.inputs.size(); ++i)
            out << (i ? ", " : "") << operand_text(graph.tensor(node.inputs[i]));
        out << ')';
        for (const auto& [key, value] : node.attrs.all()) out << ' ' << key << '=' << to_string(value);
        out << " : " << type_text(result);
        if (node.cluster >= 0) out << "  [kernel " << node.cluster << ']';
        if (!node.origin.empty()) out << "  # " << node.origin;
        out << '\n';
    }
    out << "  return";
    for (std::size_t i = 0; i < graph.outputs().size(); ++i)
        out << (i ? ", " : " ") << '%' << graph.outputs()[i];
    out << "\n}\n";
    return out.str();
}

}  // namespace sol::ir
