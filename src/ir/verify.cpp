#include "sol/ir/verify.h"

#include <set>

#include "sol/error.h"
#include "sol/ir/shape_inference.h"

namespace sol::ir {

void verify(const Graph& graph, const std::string& context) {
    auto fail = [&context](const std::string& message) {
        throw Error("graph verification failed " + context + ": " + message);
    };
    std::vector<bool> defined(graph.tensor_count(), false);
    for (int id : graph.inputs()) defined[id] = true;
    std::set<std::string> parameter_names;
    for (int id : graph.parameters()) {
        if (graph.tensor(id).kind != TensorKind::Parameter) fail("%" + std::to_string(id) + " listed as parameter");
        if (!parameter_names.insert(graph.tensor(id).name).second)
            fail("parameter name '" + graph.tensor(id).name + "' appears twice");
        defined[id] = true;
    }
    for (std::size_t i = 0; i < graph.tensor_count(); ++i)
        if (graph.tensor(static_cast<int>(i)).kind == TensorKind::Constant) defined[i] = true;

    for (std::size_t index = 0; index < graph.nodes().size(); ++index) {
        const Node& node = graph.nodes()[index];
        const std::string where = "node " + std::to_string(index) + " (" + std::string(name(node.op)) + ")";
        std::vector<const Tensor*> operands;
        for (int input : node.inputs) {
            if (input < 0 || input >= static_cast<int>(graph.tensor_count()))
                fail(where + " reads unknown tensor %" + std::to_string(input));
            if (!defined[input])
                fail(where + " reads %" + std::to_string(input) + " before it is defined");
            operands.push_back(&graph.tensor(input));
        }
        const Tensor& output = graph.tensor(node.output);
        if (defined[node.output]) fail(where + " redefines %" + std::to_string(node.output));
        if (output.producer != static_cast<int>(index))
            fail(where + " output %" + std::to_string(node.output) + " has a stale producer index");
        TensorType expected = infer_type(node.op, operands, node.attrs);
        if (expected.shape != output.shape || expected.dtype != output.dtype)
            fail(where + " output %" + std::to_string(node.output) + " is " + to_string(output.shape) +
                 " but its inputs give " + to_string(expected.shape));
        if (output.channel_block != 0 &&
            (output.shape.size() != 4 || output.channel_block < 0 || output.shape[1] % output.channel_block != 0))
            fail(where + " output %" + std::to_string(node.output) + " " + to_string(output.shape) +
                 " cannot have its channels blocked by " + std::to_string(output.channel_block));
        defined[node.output] = true;
    }
    if (graph.outputs().empty()) fail("the graph has no outputs");
    for (int id : graph.outputs()) {
        if (!defined[id]) fail("output %" + std::to_string(id) + " is never computed");
        if (graph.tensor(id).channel_block != 0)
            fail("output %" + std::to_string(id) + " must be in the framework's row-major layout");
    }
}

}  // namespace sol::ir
