// Shared machinery of the CPU emitters: names the arguments of a kernel,
// writes broadcast-aware index expressions, inlines constants and emits the
// fused elementwise chain ("epilogue") that follows the anchor op.
//
// Loop variables of an output element are always i0 .. i{rank-1}, so any
// emitter whose loops produce them can take an epilogue.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "sol/codegen/cpu/generate_module.h"
#include "sol/ir/graph.h"

namespace sol::codegen::cpu {

class KernelBuilder {
public:
    // `cluster` holds node indices: the anchor first, then its fused chain.
    KernelBuilder(const ir::Graph& graph, std::vector<int> cluster, const CpuTarget& target);

    const ir::Graph& graph() const { return graph_; }
    const CpuTarget& target() const { return target_; }
    const ir::Node& anchor() const { return graph_.nodes()[cluster_.front()]; }
    const ir::Tensor& input(std::size_t index) const { return graph_.tensor(anchor().inputs[index]); }
    const ir::Tensor& result() const { return graph_.tensor(graph_.nodes()[cluster_.back()].output); }
    std::string value_type() const;  // C type of the result

    // Pointer name of a tensor the kernel reads ("a0", "a1", ...).
    std::string pointer(int tensor_id);
    // `tensor[...]` at the element of the output that i0.. address, broadcasting
    // (or the literal, for a constant).
    std::string element(int tensor_id);
    // Offset of the output element addressed by i0 .. i{rank-1}.
    std::string output_offset() const;
    // Offset into a tensor of `shape` broadcast against the output.
    std::string broadcast_offset(const ir::Shape& shape) const;

    // Statements applying the fused chain to variable `value`, then storing it.
    std::string epilogue_and_store(const std::string& value);
    // Expression of one elementwise op over operand expressions.
    std::string elementwise_expression(const ir::Node& node, const std::vector<std::string>& operands) const;
    // `#pragma omp parallel for collapse(n)` when `work` is worth the threads.
    std::string parallel_for(int collapse, std::int64_t work) const;
    // Opens `for (int64_t iD = 0; iD < extent; ++iD)` for dimensions [first, last).
    std::string open_loops(const ir::Shape& shape, std::size_t first, std::size_t last) const;

    std::ostringstream body;

    // The kernel function, named `name`, reading the registered pointers.
    std::string function_source(const std::string& name) const;
    std::vector<int> arguments() const;  // tensor ids, output last
    std::string description() const;     // "conv2d + relu" with shapes

private:
    const ir::Graph& graph_;
    std::vector<int> cluster_;
    CpuTarget target_;
    std::vector<int> read_tensors_;
};

std::string literal(double value, ir::DType dtype);

// Declares `ow_lo[KW]` and `ow_hi[KW]`: for each kernel column kw, the output
// columns [lo, hi) whose input column ow*SW + kw*DW - PW lies in [0, W), so
// windowed loops (convolution, pooling) need no bounds checks inside.
std::string column_ranges(std::int64_t W, std::int64_t OW, std::int64_t KW, std::int64_t SW, std::int64_t PW,
                          std::int64_t DW);

// Emitters: each writes the kernel body into builder.body.
void emit_conv2d(KernelBuilder& builder);
void emit_linear(KernelBuilder& builder);
void emit_pooling(KernelBuilder& builder);
void emit_elementwise(KernelBuilder& builder);
void emit_movement(KernelBuilder& builder);
void emit_softmax(KernelBuilder& builder);
void emit_reduction(KernelBuilder& builder);

}  // namespace sol::codegen::cpu
