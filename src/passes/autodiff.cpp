#include "sol/passes/autodiff.h"

#include <algorithm>
#include <map>

#include "gradient_rules.h"
#include "sol/error.h"

namespace sol::passes {
namespace {

// The tensor of `graph` named `name` among its parameters and inputs.
int find_named(const ir::Graph& graph, const std::string& name) {
    for (const std::vector<int>* list : {&graph.parameters(), &graph.inputs()})
        for (int id : *list)
            if (graph.tensor(id).name == name) return id;
    throw Error("cannot differentiate with respect to '" + name + "': the model has no parameter or input of that name");
}

// Reverse mode over the forward nodes of `joint` (a copy of the forward
// graph), appending the gradient nodes. Returns the gradient of each forward
// tensor that one reaches (id -> id).
std::map<int, int> backpropagate(ir::Graph& joint, std::size_t forward_nodes, const std::vector<bool>& active,
                                 const std::vector<int>& seeds) {
    std::map<int, int> gradient;
    auto accumulate = [&](int tensor, int contribution) {
        auto [at, fresh] = gradient.emplace(tensor, contribution);
        // A value read several times gets the sum of its readers' gradients.
        if (!fresh) at->second = joint.add_node(ir::Op::Add, {at->second, contribution}, {}, "gradient sum");
    };
    for (std::size_t k = 0; k < seeds.size(); ++k)
        if (seeds[k] >= 0) accumulate(joint.outputs()[k], seeds[k]);
    for (std::size_t i = forward_nodes; i-- > 0;) {
        const ir::Node node = joint.nodes()[i];  // a copy: the node list grows below
        const auto found = gradient.find(node.output);
        if (found == gradient.end()) continue;
        // Operands listed in the node's "stop_gradient" attribute count as
        // constants here (see include/sol/passes/autodiff.h).
        const std::vector<std::int64_t> stopped = node.attrs.get_ints("stop_gradient", {});
        std::vector<bool> wanted;
        for (std::size_t k = 0; k < node.inputs.size(); ++k)
            wanted.push_back(active[node.inputs[k]] &&
                             std::find(stopped.begin(), stopped.end(), static_cast<std::int64_t>(k)) == stopped.end());
        if (std::none_of(wanted.begin(), wanted.end(), [](bool w) { return w; })) continue;
        const std::vector<int> contributions = input_gradients(joint, node, found->second, wanted);
        for (std::size_t k = 0; k < node.inputs.size(); ++k)
            if (contributions[k] >= 0) accumulate(node.inputs[k], contributions[k]);
    }
    return gradient;
}

}  // namespace

DifferentiatedGraphs differentiate(const ir::Graph& graph, const std::vector<std::string>& wrt,
                                   int differentiable_outputs) {
    ir::Graph joint = graph;
    const std::size_t forward_nodes = joint.nodes().size();
    const std::size_t forward_tensors = joint.tensor_count();

    // Tensors whose gradient is needed: those that depend on a `wrt` tensor.
    std::vector<int> wrt_ids;
    std::vector<bool> active(forward_tensors, false);
    for (const std::string& name : wrt) {
        wrt_ids.push_back(find_named(graph, name));
        active[wrt_ids.back()] = graph.tensor(wrt_ids.back()).dtype == ir::DType::Float32;
    }
    for (const ir::Node& node : graph.nodes())
        for (int input : node.inputs)
            if (active[input] && graph.tensor(node.output).dtype == ir::DType::Float32) active[node.output] = true;

    // One gradient input per differentiable float output, read or not, so the
    // caller always passes the same list.
    const std::size_t differentiable =
        differentiable_outputs < 0 ? graph.outputs().size() : static_cast<std::size_t>(differentiable_outputs);
    std::vector<int> seeds;
    for (std::size_t k = 0; k < graph.outputs().size(); ++k) {
        const ir::Tensor& out = graph.tensor(graph.outputs()[k]);
        seeds.push_back(k < differentiable && out.dtype == ir::DType::Float32
                            ? joint.add_input("grad:" + std::to_string(k), out.shape, out.dtype)
                            : -1);
    }
    const std::map<int, int> gradient = backpropagate(joint, forward_nodes, active, seeds);

    DifferentiatedGraphs result;
    std::vector<int> gradient_outputs;  // joint ids
    for (std::size_t k = 0; k < wrt.size(); ++k) {
        const auto found = gradient.find(wrt_ids[k]);
        if (found == gradient.end()) continue;
        gradient_outputs.push_back(found->second);
        result.gradient_of.push_back(wrt[k]);
    }

    // Forward tensors the backward nodes read.
    auto is_forward_intermediate = [&](int id) {
        return id < static_cast<int>(forward_tensors) && joint.tensor(id).kind == ir::TensorKind::Intermediate;
    };
    std::vector<bool> saved(forward_tensors, false);
    for (std::size_t i = forward_nodes; i < joint.nodes().size(); ++i)
        for (int input : joint.nodes()[i].inputs)
            if (is_forward_intermediate(input)) saved[input] = true;
    for (int id : gradient_outputs)
        if (is_forward_intermediate(id)) saved[id] = true;

    // Recompute instead of save: an elementwise result whose operands are
    // all at hand in the backward graph anyway (parameters, constants, the
    // inputs, other saved values, which then must stay saved).
    std::vector<bool> recompute(forward_nodes, false), pinned(forward_tensors, false);
    for (std::size_t i = forward_nodes; i-- > 0;) {
        const ir::Node& node = joint.nodes()[i];
        if (!saved[node.output] || pinned[node.output] || !ir::has_trait(node.op, ir::Elementwise)) continue;
        const bool at_hand = std::all_of(node.inputs.begin(), node.inputs.end(),
                                         [&](int input) { return !is_forward_intermediate(input) || saved[input]; });
        if (!at_hand) continue;
        recompute[i] = true;
        saved[node.output] = false;
        ++result.recomputed_nodes;
        for (int input : node.inputs)
            if (is_forward_intermediate(input)) pinned[input] = true;
    }

    // The forward graph: the model's outputs, then each saved value once.
    result.forward = graph;
    result.model_outputs = static_cast<int>(graph.outputs().size());
    std::vector<int> forward_outputs = graph.outputs();
    std::map<int, std::string> saved_name;  // forward tensor -> its backward input's name
    for (std::size_t k = 0; k < forward_outputs.size(); ++k)
        if (saved[forward_outputs[k]]) saved_name.emplace(forward_outputs[k], "saved:" + std::to_string(k));
    for (std::size_t id = 0; id < forward_tensors; ++id)
        if (saved[id] && !saved_name.count(static_cast<int>(id))) {
            saved_name.emplace(static_cast<int>(id), "saved:" + std::to_string(forward_outputs.size()));
            forward_outputs.push_back(static_cast<int>(id));
        }
    result.forward.set_outputs(forward_outputs);

    // The backward graph: gradient inputs, saved values, then what the
    // recomputed and gradient nodes read, created on first use.
    ir::Graph& backward = result.backward;
    std::map<int, int> mapped;  // joint id -> backward id
    for (std::size_t k = 0; k < seeds.size(); ++k)
        if (seeds[k] >= 0) mapped[seeds[k]] = backward.add_input("grad:" + std::to_string(k), joint.tensor(seeds[k]).shape, joint.tensor(seeds[k]).dtype);
    for (const auto& [id, name] : saved_name) mapped[id] = backward.add_input(name, joint.tensor(id).shape, joint.tensor(id).dtype);
    auto lookup = [&](int id) {
        if (auto found = mapped.find(id); found != mapped.end()) return found->second;
        const ir::Tensor& t = joint.tensor(id);
        int created = -1;
        switch (t.kind) {
            case ir::TensorKind::Parameter: created = backward.add_parameter(t.name, t.shape, t.dtype); break;
            case ir::TensorKind::Input: created = backward.add_input(t.name, t.shape, t.dtype); break;
            case ir::TensorKind::Constant: created = backward.add_constant(t.value, t.dtype); break;
            default: throw Error("internal: the backward graph reads forward tensor " + std::to_string(id) + ", neither saved nor recomputed");
        }
        return mapped[id] = created;
    };
    auto copy_node = [&](const ir::Node& node) {
        std::vector<int> inputs;
        for (int input : node.inputs) inputs.push_back(lookup(input));
        mapped[node.output] = backward.add_node(node.op, inputs, node.attrs, node.origin);
    };
    for (std::size_t i = 0; i < forward_nodes; ++i)
        if (recompute[i]) copy_node(joint.nodes()[i]);
    for (std::size_t i = forward_nodes; i < joint.nodes().size(); ++i) copy_node(joint.nodes()[i]);
    std::vector<int> outputs;
    for (int id : gradient_outputs) outputs.push_back(lookup(id));
    backward.set_outputs(outputs);
    return result;
}

}  // namespace sol::passes
