#include "sol/ir/graph.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <sstream>

#include "sol/error.h"
#include "sol/ir/shape_inference.h"

namespace sol::ir {

std::int64_t element_count(const Shape& shape) {
    std::int64_t count = 1;
    for (std::int64_t extent : shape) count *= extent;
    return count;
}

std::string to_string(const Shape& shape) {
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
    out << ']';
    return out.str();
}

int Graph::add_tensor(Tensor tensor) {
    tensor.id = static_cast<int>(tensors_.size());
    for (std::int64_t extent : tensor.shape)
        if (extent < 0)
            throw ShapeError("tensor '" + tensor.name + "' has a negative extent in shape " +
                             to_string(tensor.shape));
    tensors_.push_back(std::move(tensor));
    return tensors_.back().id;
}

Graph Graph::assemble(std::vector<Tensor> tensors, std::vector<Node> nodes, std::vector<int> inputs,
                      std::vector<int> parameters, std::vector<int> outputs) {
    Graph graph;
    const int count = static_cast<int>(tensors.size());
    auto check = [count](int id, const char* what) {
        if (id < 0 || id >= count)
            throw Error(std::string("graph assembly: ") + what + " refers to tensor %" + std::to_string(id) + " of " +
                        std::to_string(count));
    };
    for (int k = 0; k < count; ++k)
        if (tensors[k].id != k) throw Error("graph assembly: tensor %" + std::to_string(k) + " has id " +
                                            std::to_string(tensors[k].id));
    for (const Node& node : nodes) {
        for (int id : node.inputs) check(id, "a node input");
        check(node.output, "a node output");
    }
    for (int id : inputs) check(id, "an input");
    for (int id : parameters) check(id, "a parameter");
    for (int id : outputs) check(id, "an output");
    graph.tensors_ = std::move(tensors);
    graph.nodes_ = std::move(nodes);
    graph.inputs_ = std::move(inputs);
    graph.parameters_ = std::move(parameters);
    graph.outputs_ = std::move(outputs);
    graph.refresh_producers();
    return graph;
}

int Graph::add_input(const std::string& name, Shape shape, DType dtype) {
    int id = add_tensor({.kind = TensorKind::Input, .name = name, .shape = std::move(shape), .dtype = dtype});
    inputs_.push_back(id);
    return id;
}

int Graph::add_parameter(const std::string& name, Shape shape, DType dtype) {
    for (int existing : parameters_)
        if (tensors_[existing].name == name)
            throw Error("parameter '" + name + "' added twice");
    int id = add_tensor(
        {.kind = TensorKind::Parameter, .name = name, .shape = std::move(shape), .dtype = dtype});
    parameters_.push_back(id);
    return id;
}

int Graph::add_constant(double value, DType dtype) {
    if (dtype == DType::Int64 && (value != std::floor(value) || std::abs(value) > 9.2e18))
        throw ShapeError("constant " + std::to_string(value) + " is not an int64 value (PyTorch would promote to "
                         "float here; SOL does not promote int64 tensors yet)");
    return add_tensor({.kind = TensorKind::Constant, .name = "", .shape = {}, .dtype = dtype, .value = value});
}

int Graph::add_node(Op op, std::vector<int> inputs, Attributes attrs, std::string origin) {
    const OpInfo& row = info(op);
    const std::string where = "op '" + std::string(row.name) + "'" +
                              (origin.empty() ? std::string() : " at " + origin);
    const int count = static_cast<int>(inputs.size());
    if (count < row.min_inputs || (row.max_inputs >= 0 && count > row.max_inputs))
        throw ShapeError(where + ": takes " + std::to_string(row.min_inputs) +
                         (row.max_inputs == row.min_inputs ? "" : " to " + (row.max_inputs < 0 ? std::string("any") : std::to_string(row.max_inputs))) +
                         " inputs, got " + std::to_string(count));
    std::vector<const Tensor*> operands;
    for (int id : inputs) operands.push_back(&tensor(id));
    TensorType type;
    try {
        type = infer_type(op, operands, attrs);
    } catch (const ShapeError& error) {
        throw ShapeError(where + ": " + error.what());
    }
    int output = add_tensor({.kind = TensorKind::Intermediate, .name = "", .shape = type.shape, .dtype = type.dtype});
    tensors_[output].producer = static_cast<int>(nodes_.size());
    nodes_.push_back({op, std::move(inputs), output, std::move(attrs), std::move(origin), -1});
    return output;
}

void Graph::set_outputs(std::vector<int> outputs) {
    for (int id : outputs) tensor(id);  // validates ids
    outputs_ = std::move(outputs);
}

void Graph::set_channel_block(int tensor_id, int block) {
    Tensor& t = tensors_.at(tensor_id);
    if (block != 0 && (t.kind != TensorKind::Intermediate || t.shape.size() != 4 || block < 0 || t.shape[1] % block != 0))
        throw Error("internal: %" + std::to_string(tensor_id) + " " + to_string(t.shape) +
                    " cannot have its channels blocked by " + std::to_string(block));
    t.channel_block = block;
}

const Tensor& Graph::tensor(int id) const {
    if (id < 0 || id >= static_cast<int>(tensors_.size()))
        throw Error("no tensor %" + std::to_string(id) + " in this graph");
    return tensors_[id];
}

bool Graph::is_output(int tensor_id) const {
    return std::find(outputs_.begin(), outputs_.end(), tensor_id) != outputs_.end();
}

std::vector<int> Graph::consumers(int tensor_id) const {
    std::vector<int> result;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        for (int input : nodes_[i].inputs)
            if (input == tensor_id) result.push_back(static_cast<int>(i));
    return result;
}

void Graph::replace_uses(int from, int to) {
    for (Node& node : nodes_)
        std::replace(node.inputs.begin(), node.inputs.end(), from, to);
    std::replace(outputs_.begin(), outputs_.end(), from, to);
}

void Graph::remove_nodes(const std::vector<bool>& remove) {
    std::vector<Node> kept;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (i >= remove.size() || !remove[i]) kept.push_back(std::move(nodes_[i]));
    nodes_ = std::move(kept);
    // A parameter nobody reads any more (e.g. a BatchNorm folded away whose
    // statistics still feed the folded weights stays) is dropped from the list
    // the runtime asks the framework for.
    std::vector<bool> read(tensors_.size(), false);
    for (const Node& node : nodes_)
        for (int input : node.inputs) read[input] = true;
    for (int output : outputs_) read[output] = true;
    std::erase_if(parameters_, [&read](int id) { return !read[id]; });
    refresh_producers();
}

void Graph::refresh_producers() {
    for (Tensor& t : tensors_) t.producer = -1;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        tensors_[nodes_[i].output].producer = static_cast<int>(i);
}

void Graph::sort_topologically() {
    refresh_producers();
    const std::size_t count = nodes_.size();
    std::vector<int> pending(count, 0);
    std::vector<std::vector<int>> readers(count);
    for (std::size_t i = 0; i < count; ++i)
        for (int input : nodes_[i].inputs)
            if (int producer = tensors_[input].producer; producer >= 0) {
                ++pending[i];
                readers[producer].push_back(static_cast<int>(i));
            }
    // Min-heap on the old position keeps the order stable where it was valid.
    std::priority_queue<int, std::vector<int>, std::greater<>> ready;
    for (std::size_t i = 0; i < count; ++i)
        if (pending[i] == 0) ready.push(static_cast<int>(i));
    std::vector<Node> sorted;
    while (!ready.empty()) {
        int next = ready.top();
        ready.pop();
        sorted.push_back(nodes_[next]);
        for (int reader : readers[next])
            if (--pending[reader] == 0) ready.push(reader);
    }
    if (sorted.size() != count) throw Error("graph has a cycle");
    nodes_ = std::move(sorted);
    refresh_producers();
}

std::vector<bool> Graph::parameter_derived() const {
    std::vector<bool> derived(tensors_.size(), false);
    for (const Tensor& t : tensors_)
        derived[t.id] = t.kind == TensorKind::Parameter || t.kind == TensorKind::Constant;
    for (const Node& node : nodes_)  // topological order: inputs are final
        derived[node.output] = std::all_of(node.inputs.begin(), node.inputs.end(),
                                           [&derived](int input) { return derived[input]; });
    return derived;
}

}  // namespace sol::ir
