// Shared machinery of the CPU emitters: names the arguments of a kernel,
// writes broadcast-aware index expressions, inlines constants and emits the
// fused elementwise chain ("epilogue") that follows the anchor op.
//
// Loop variables of an output element are always i0 .. i{rank-1}, so any
// emitter whose loops produce them can take an epilogue. Every tensor is
// addressed in its own layout (Tensor::channel_block) from these logical
// indices, so a kernel is correct whatever layouts it meets; an emitter
// that walks channel blocks (`use_channel_block_loops`) also names the block
// c0 and the lane c1, and tensors blocked the same way are then addressed
// without a division.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "sol/codegen/cpu/generate_module.h"
#include "sol/ir/graph.h"

namespace sol::codegen::cpu {

// Position of the anchor in a cluster (node indices in order): the op whose
// emitter writes the loops. Nodes before it are its prologue (a channel
// concat and/or elementwise nodes computed at each element the anchor reads,
// see passes/fuse_depth_first), nodes after it the epilogue chain. The last
// node that is neither elementwise nor a channel concat, else the first.
std::size_t anchor_position(const ir::Graph& graph, const std::vector<int>& cluster);

class KernelBuilder {
public:
    // `cluster` holds node indices in order: prologue, anchor, epilogue chain.
    KernelBuilder(const ir::Graph& graph, std::vector<int> cluster, const CpuTarget& target);

    const ir::Graph& graph() const { return graph_; }
    const CpuTarget& target() const { return target_; }
    const ir::Node& anchor() const { return graph_.nodes()[cluster_[anchor_position_]]; }
    bool has_prologue() const { return anchor_position_ > 0; }
    bool has_epilogue() const { return anchor_position_ + 1 < cluster_.size(); }
    const std::vector<int>& cluster() const { return cluster_; }
    // Channel blocking of the values the anchor reads from memory: the parts'
    // of a concat prologue, else the anchor's input 0's.
    int source_block() const;
    // The anchor's input 0 at `index` (n, c, h, w expressions), computed by
    // the prologue from what it reads (a concat's parts, the chain's side
    // operands). `block`/`lane` name the channel's block and lane when the
    // loops walk blocks of `lane_block` channels (-1: source_block()), so
    // operands blocked that way are addressed without a division. Needs
    // declare_concat_parts() first when the prologue starts with a concat.
    std::string input_value(const std::vector<std::string>& index, const std::string& block = "",
                            const std::string& lane = "", int lane_block = -1);
    // For a channel concat whose parts share one layout: declares the
    // parts' pointers `parts[k]` and, per channel unit u (a block of the
    // parts' blocking, or one channel), `part_of[u]` (its part),
    // `part_offset[u]` (its first element of image 0 in that part) and
    // `part_image[u]` (the part's elements per image).
    std::string declare_concat_parts(const ir::Node& concat);
    // The concat's element at `index` (blocked: `block`/`lane` name it) from
    // those tables.
    std::string concat_element(const ir::Node& concat, const std::vector<std::string>& index,
                               const std::string& block = "", const std::string& lane = "") const;
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
    // Offset into `t`, broadcast against the output, in t's layout.
    std::string offset(const ir::Tensor& t) const;

    // The emitter's loops walk channels as i1 = c0 * block + c1 (c1 innermost).
    void use_channel_block_loops(int block) { loop_block_ = block; }
    int loop_block() const { return loop_block_; }
    // Opens loops i0, c0, i2, i3, c1 over a rank-4 `shape` and defines i1;
    // the caller closes the brace it opens.
    std::string open_channel_block_loops(const ir::Shape& shape) const;

    // Statements applying the fused chain to variable `value`, then storing it.
    std::string epilogue_and_store(const std::string& value);
    // Expression of one elementwise op over operand expressions.
    std::string elementwise_expression(const ir::Node& node, const std::vector<std::string>& operands) const;
    // `#pragma omp parallel for collapse(n)` when `work` is worth the threads.
    std::string parallel_for(int collapse, std::int64_t work) const;
    // Opens `for (int64_t iD = 0; iD < extent; ++iD)` for dimensions [first, last).
    std::string open_loops(const ir::Shape& shape, std::size_t first, std::size_t last) const;

    // Explicit vector code (vector_code.cpp) for loops over the pixels of
    // channel blocks, one register of lanes (use_channel_block_loops' block)
    // per iteration: the prologue's sol_f32x16 / sol_f32x8.
    std::string vector_type() const;  // "" for blocks without a register type
    // Opens loops i0, c0, i2, i3 (no lane loop); the caller closes the brace.
    std::string open_channel_block_pixel_loops(const ir::Shape& shape) const;
    // Statements computing the cluster's nodes from position `first` on into
    // register `v` and storing it, or "" unless every node has a vector form
    // with operands that are one register each (a load of the block, a
    // per-channel parameter, a broadcast scalar). `reads_running`: the node at
    // `first` reads a register `v` the caller computed (the previous node's
    // result) instead of loading it.
    std::string vector_chain_and_store(std::size_t first, bool reads_running);
    // The anchor's register `v` (use_channel_block_loops' lanes; c0 names the
    // register, channel c0 * lanes + lane) through the chain after it and
    // stored: as one register where the chain has vector forms, else lane by
    // lane through the scalar chain.
    std::string register_chain_and_store();

    std::ostringstream body;

    // The kernel function, named `name`, reading the registered pointers.
    std::string function_source(const std::string& name) const;
    // An operand the result may overwrite (KernelCall::may_overwrite), or -1:
    // a computed full-size operand of an elementwise kernel with the result's
    // shape, dtype and layout, read at the element being written only. Its
    // pointer and `out` are then declared without __restrict__.
    int in_place_operand() const;
    std::vector<int> arguments() const;  // tensor ids, output last
    std::string description() const;     // "conv2d + relu" with shapes

private:
    std::string vector_operand(int tensor_id);
    std::vector<std::string> vector_operands(std::size_t position, const std::string& running);
    std::string vector_expression(const ir::Node& node, const std::vector<std::string>& operands) const;

    const ir::Graph& graph_;
    std::vector<int> cluster_;
    CpuTarget target_;
    std::size_t anchor_position_ = 0;
    std::vector<int> read_tensors_;
    int loop_block_ = 0;
};

std::string literal(double value, ir::DType dtype);

// Offset of one element of `t` in t's layout. `index` holds a C++ expression
// per dimension of t ("0" where it broadcasts). For a channel-blocked tensor,
// `block` and `lane` may name the channel's block and lane (otherwise they
// are derived from index[1]).
std::string layout_offset(const ir::Tensor& t, const std::vector<std::string>& index, const std::string& block = "",
                          const std::string& lane = "");

// Indents every line of `code` by `spaces` (preprocessor lines stay in column 0).
std::string indent(const std::string& code, int spaces);

// Declares `ow_lo[KW]` and `ow_hi[KW]`: for each kernel column kw, the output
// columns [lo, hi) whose input column ow*SW + kw*DW - PW lies in [0, W), so
// windowed loops (convolution, pooling) need no bounds checks inside.
std::string column_ranges(std::int64_t W, std::int64_t OW, std::int64_t KW, std::int64_t SW, std::int64_t PW,
                          std::int64_t DW);

// Pooling windows, shared by the forward and backward pooling emitters. Each
// expects constants H, W, OH, OW and loop variables i2, i3 (the output row
// and column) in scope.
// The window of output (i2, i3) as [h0, h1) x [w0, w1) for adaptive pooling.
extern const char* const kAdaptiveWindow;
// The kernel rows [kh_lo, kh_hi) of output row i2 that lie inside the image
// (constants KH, SH, PH, DH, H in scope).
extern const char* const kWindowRowsInside;
// Statements computing `float v` for average pooling from the window sum
// `sum` of output (i2, i3), and the clipped window [h0, h1) x [w0, w1): the
// padded window counts padding but not the overhang past it (ceil_mode), as
// in PyTorch.
std::string average(const ir::Node& node, const std::string& sum);
// KH, KW, SH, SW, PH, PW, DH, DW of a max or average pooling window (average
// pooling has no dilation), and the column ranges each tap reaches.
std::string window_constants(const ir::Node& node, const ir::Shape& in, const ir::Shape& out);

// Emitters: each writes the kernel body into builder.body.
void emit_conv2d(KernelBuilder& builder);
// 1x1 convolutions on row-major images as register-tiled matrix products.
bool is_pointwise_conv(const KernelBuilder& builder);
void emit_pointwise_conv(KernelBuilder& builder);
// Depthwise convolutions on row-major images, a padded plane (split by stride) at a time.
bool is_depthwise_conv_on_planes(const KernelBuilder& builder);
void emit_depthwise_conv(KernelBuilder& builder);
// Lanes of the last register when NHWC's `channels` are walked in registers
// of `vector_width`: 0 when they fill whole registers, 8 for one 8-lane
// register after the 16-lane ones (72 = 4 x 16 + 8), -1 when neither.
int register_tail(std::int64_t channels, int vector_width);
// What the channel-blocked convolution emitters below start from: a conv2d
// anchor without a prologue, rank-4 fp32 operands, row-major weights and
// bias, and a target with registers of 16 or 8 floats (sol_f32x16/8).
bool is_vector_conv_candidate(const KernelBuilder& builder);
// Depthwise convolutions on channel-blocked images (NHWC, NCHW16c/8c): registers of channels.
bool is_blocked_depthwise_conv(const KernelBuilder& builder);
void emit_blocked_depthwise_conv(KernelBuilder& builder);
// 1x1 convolutions on NHWC images with few channels: register tiles of pixels by channels.
bool is_blocked_pointwise_conv(const KernelBuilder& builder);
void emit_blocked_pointwise_conv(KernelBuilder& builder);
// Convolutions of images with few input channels (first layers) into NHWC or NCHW16c/8c.
bool is_few_input_channels_conv(const KernelBuilder& builder);
void emit_few_input_channels_conv(KernelBuilder& builder);
void emit_linear(KernelBuilder& builder);
void emit_pooling(KernelBuilder& builder);
void emit_elementwise(KernelBuilder& builder);
void emit_movement(KernelBuilder& builder);
void emit_softmax(KernelBuilder& builder);
void emit_reduction(KernelBuilder& builder);
void emit_gradient(KernelBuilder& builder);  // convolution and pooling backward

}  // namespace sol::codegen::cpu
