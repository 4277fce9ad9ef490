// The graph IR: tensors (values with a shape and a dtype) and nodes (one op
// each, one output each) kept in topological order.
//
// Parameters and buffers of the framework model are graph inputs named by
// their state_dict keys: the framework owns their memory, so new weights
// loaded after optimization change the results. Only rank-0 scalars from the
// model's code (0.5 in `x * 0.5`, eps) are constants.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sol/ir/attributes.h"
#include "sol/ir/dtype.h"
#include "sol/ir/op_table.h"

namespace sol::ir {

using Shape = std::vector<std::int64_t>;

std::int64_t element_count(const Shape& shape);
std::string to_string(const Shape& shape);

enum class TensorKind { Input, Parameter, Constant, Intermediate };

struct Tensor {
    int id = -1;
    TensorKind kind = TensorKind::Intermediate;
    std::string name;     // inputs and parameters: the framework's name
    Shape shape;
    DType dtype = DType::Float32;
    double value = 0.0;   // constants only
    int producer = -1;    // index of the producing node (intermediates only)
    // Memory layout. 0: row-major (NCHW for images), the framework's layout
    // and the only one graph inputs, outputs and parameters ever have.
    // b > 0: channels blocked by b (NCHW{b}c: [N][C/b][H][W][b]), so one
    // vector register holds b channels of a pixel; only for rank-4 tensors
    // with C % b == 0, set by a device's layout pass. b == C is NHWC
    // (channels last): one block, each pixel's channels contiguous.
    int channel_block = 0;
};

struct Node {
    Op op;
    std::vector<int> inputs;  // tensor ids
    int output = -1;          // tensor id
    Attributes attrs;
    std::string origin;       // where in the user's model: module path (file:line)
    int cluster = -1;         // kernel this node is fused into (set by fusion)
};

class Graph {
public:
    // A graph from its parts, exactly as given (tensor ids, node order,
    // clusters, layouts): how ir/serialize reads one back. Producers are
    // recomputed; ir::verify checks the rest. Throws sol::Error for an id
    // out of range.
    static Graph assemble(std::vector<Tensor> tensors, std::vector<Node> nodes, std::vector<int> inputs,
                          std::vector<int> parameters, std::vector<int> outputs);

    int add_input(const std::string& name, Shape shape, DType dtype);
    int add_parameter(const std::string& name, Shape shape, DType dtype);
    int add_constant(double value, DType dtype);
    // Appends a node; infers the output's shape and dtype (throws ShapeError
    // naming the op and origin) and returns the output tensor id.
    int add_node(Op op, std::vector<int> inputs, Attributes attrs, std::string origin);
    void set_outputs(std::vector<int> outputs);
    // Layout of an intermediate tensor (see Tensor::channel_block).
    void set_channel_block(int tensor_id, int block);

    const Tensor& tensor(int id) const;
    std::size_t tensor_count() const { return tensors_.size(); }
    const std::vector<Node>& nodes() const { return nodes_; }
    std::vector<Node>& nodes() { return nodes_; }
    const std::vector<int>& inputs() const { return inputs_; }
    const std::vector<int>& parameters() const { return parameters_; }
    const std::vector<int>& outputs() const { return outputs_; }

    bool is_output(int tensor_id) const;
    // Nodes reading `tensor_id` (indices into nodes()), in order; a node that
    // reads it twice is listed twice.
    std::vector<int> consumers(int tensor_id) const;
    // Redirects every read of `from` (nodes and graph outputs) to `to`.
    void replace_uses(int from, int to);
    // Drops nodes whose flag is set, then parameters nobody reads any more.
    // Keeps the order of the rest.
    void remove_nodes(const std::vector<bool>& remove);
    // Restores topological order after nodes were appended out of place;
    // otherwise keeps the current order (stable).
    void sort_topologically();
    // Per tensor id: true when the tensor depends on parameters and constants
    // only, so its value can be computed once per weight update instead of
    // once per call (folded BatchNorm weights, for example).
    std::vector<bool> parameter_derived() const;

private:
    int add_tensor(Tensor tensor);
    void refresh_producers();

    std::vector<Tensor> tensors_;
    std::vector<Node> nodes_;
    std::vector<int> inputs_;
    std::vector<int> parameters_;
    std::vector<int> outputs_;
};

}  // namespace sol::ir
