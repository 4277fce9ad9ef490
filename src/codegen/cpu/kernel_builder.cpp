#include "kernel_builder.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "sol/error.h"

namespace sol::codegen::cpu {

std::string literal(double value, ir::DType dtype) {
    if (dtype == ir::DType::Int64) {
        // An unbounded clamp side is +-inf; casting that to int64 is undefined.
        if (value >= 9.2233720368547758e18) return "INT64_MAX";
        if (value <= -9.2233720368547758e18) return "INT64_MIN";
        return "INT64_C(" + std::to_string(static_cast<std::int64_t>(value)) + ")";
    }
    if (dtype == ir::DType::Bool) return value != 0.0 ? "true" : "false";
    if (std::isnan(value)) return "NAN";
    if (std::isinf(value)) return value > 0 ? "INFINITY" : "(-INFINITY)";
    // Shortest text that reads back as the same float.
    char text[64];
    auto [end, error] = std::to_chars(text, text + sizeof(text), static_cast<float>(value));
    std::string result(text, end);
    if (result.find_first_of(".e") == std::string::npos) result += ".0";
    return "(" + result + "f)";
}

std::string indent(const std::string& code, int spaces) {
    std::string result, pad(spaces, ' ');
    std::size_t start = 0;
    while (start < code.size()) {
        const std::size_t end = code.find('\n', start);
        const std::string line = code.substr(start, end == std::string::npos ? std::string::npos : end - start + 1);
        result += (line[0] == '#' ? "" : pad) + line;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return result;
}

std::string column_ranges(std::int64_t W, std::int64_t OW, std::int64_t KW, std::int64_t SW, std::int64_t PW,
                          std::int64_t DW) {
    auto ceil_div = [](std::int64_t a, std::int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
    auto floor_div = [](std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
    std::string lo, hi;
    for (std::int64_t kw = 0; kw < KW; ++kw) {
        const std::int64_t first = std::clamp<std::int64_t>(ceil_div(PW - kw * DW, SW), 0, OW);
        const std::int64_t last = std::clamp<std::int64_t>(floor_div(W - 1 + PW - kw * DW, SW) + 1, first, OW);
        lo += (kw ? ", " : "") + std::to_string(first);
        hi += (kw ? ", " : "") + std::to_string(last);
    }
    return "static constexpr int64_t ow_lo[" + std::to_string(KW) + "] = {" + lo + "}, ow_hi[" + std::to_string(KW) +
           "] = {" + hi + "};\n";
}

std::size_t anchor_position(const ir::Graph& graph, const std::vector<int>& cluster) {
    for (std::size_t k = cluster.size(); k-- > 0;) {
        const ir::Node& node = graph.nodes()[cluster[k]];
        const bool channel_concat = node.op == ir::Op::Concat && node.attrs.get_int("axis") == 1;
        if (!ir::has_trait(node.op, ir::Elementwise) && !channel_concat) return k;
    }
    return 0;
}

KernelBuilder::KernelBuilder(const ir::Graph& graph, std::vector<int> cluster, const CpuTarget& target)
    : graph_(graph), cluster_(std::move(cluster)), target_(target), anchor_position_(anchor_position(graph_, cluster_)) {}

int KernelBuilder::source_block() const {
    const ir::Node& first = graph_.nodes()[cluster_.front()];
    if (has_prologue() && first.op == ir::Op::Concat) return graph_.tensor(first.inputs.front()).channel_block;
    return input(0).channel_block;
}

std::string KernelBuilder::declare_concat_parts(const ir::Node& concat) {
    const ir::Shape& shape = graph_.tensor(concat.output).shape;
    const std::int64_t plane = shape[2] * shape[3];
    const int block = graph_.tensor(concat.inputs.front()).channel_block;
    const std::int64_t unit = block > 0 ? block : 1;  // channels per table entry
    std::string parts, part_of, offsets, images;
    auto append = [](std::string& list, const std::string& item) { list += (list.empty() ? "" : ", ") + item; };
    for (std::size_t k = 0; k < concat.inputs.size(); ++k) {
        const ir::Tensor& t = graph_.tensor(concat.inputs[k]);
        append(parts, pointer(concat.inputs[k]));
        for (std::int64_t u = 0; u < t.shape[1] / unit; ++u) {
            append(part_of, std::to_string(k));
            append(offsets, std::to_string(u * unit * plane));
            append(images, std::to_string(t.shape[1] * plane));
        }
    }
    // Only the parts' pointers are set at run time: a pointer per unit made
    // densenet's 1664-channel tails thousands of stores long, which took
    // GCC's SLP vectorizer seconds per kernel.
    const std::string units = std::to_string(shape[1] / unit);
    return "// The concatenated tensor is never stored: each " + std::string(block > 0 ? "channel block" : "channel") +
           " is read from its part.\n"
           "const float* const parts[" + std::to_string(concat.inputs.size()) + "] = {" + parts + "};\n"
           "static constexpr int32_t part_of[" + units + "] = {" + part_of + "};\n"
           "static constexpr int64_t part_offset[" + units + "] = {" + offsets + "};\n"
           "static constexpr int64_t part_image[" + units + "] = {" + images + "};\n";
}

std::string KernelBuilder::concat_element(const ir::Node& concat, const std::vector<std::string>& index,
                                          const std::string& block, const std::string& lane) const {
    const ir::Shape& shape = graph_.tensor(concat.output).shape;
    const std::int64_t b = graph_.tensor(concat.inputs.front()).channel_block;
    const std::string pixel = "(" + index[2] + ")*" + std::to_string(shape[3]) + " + " + index[3];
    auto unit_element = [](const std::string& u, const std::string& offset) {
        return "parts[part_of[" + u + "]][part_offset[" + u + "] + " + offset + "]";
    };
    if (b == 0) return unit_element(index[1], index[0] + "*part_image[" + index[1] + "] + " + pixel);
    const std::string u = block.empty() ? "(" + index[1] + ") / " + std::to_string(b) : block;
    const std::string l = lane.empty() ? "(" + index[1] + ") % " + std::to_string(b) : lane;
    return unit_element(u, index[0] + "*part_image[" + u + "] + (" + pixel + ")*" + std::to_string(b) +
                               (l == "0" ? "" : " + " + l));
}

std::string KernelBuilder::input_value(const std::vector<std::string>& index, const std::string& block,
                                       const std::string& lane, int lane_block) {
    if (lane_block < 0) lane_block = source_block();
    // Any operand at `index`, broadcast from the right as in the graph.
    auto load = [&](int tensor_id) {
        const ir::Tensor& t = graph_.tensor(tensor_id);
        if (t.kind == ir::TensorKind::Constant) return literal(t.value, t.dtype);
        const std::size_t shift = index.size() - t.shape.size();
        std::vector<std::string> at;
        for (std::size_t d = 0; d < t.shape.size(); ++d) at.push_back(t.shape[d] == 1 ? "0" : index[d + shift]);
        const bool named = !block.empty() && shift == 0 && t.channel_block == lane_block;
        return pointer(tensor_id) + "[" + layout_offset(t, at, named ? block : "", named ? lane : "") + "]";
    };
    if (!has_prologue()) return load(anchor().inputs[0]);
    std::string value;
    int running = -1;
    for (std::size_t k = 0; k < anchor_position_; ++k) {
        const ir::Node& node = graph_.nodes()[cluster_[k]];
        if (node.op == ir::Op::Concat) {
            value = concat_element(node, index, block, lane);
        } else {
            std::vector<std::string> operands;
            for (int input : node.inputs) operands.push_back(input == running ? value : load(input));
            value = elementwise_expression(node, operands);
        }
        running = node.output;
    }
    return value;
}

std::string KernelBuilder::value_type() const { return std::string(ir::c_type(result().dtype)); }

std::string KernelBuilder::pointer(int tensor_id) {
    auto found = std::find(read_tensors_.begin(), read_tensors_.end(), tensor_id);
    if (found == read_tensors_.end()) {
        read_tensors_.push_back(tensor_id);
        found = read_tensors_.end() - 1;
    }
    return "a" + std::to_string(found - read_tensors_.begin());
}

std::string KernelBuilder::element(int tensor_id) {
    const ir::Tensor& t = graph_.tensor(tensor_id);
    if (t.kind == ir::TensorKind::Constant) return literal(t.value, t.dtype);
    return pointer(tensor_id) + "[" + offset(t) + "]";
}

std::string layout_offset(const ir::Tensor& t, const std::vector<std::string>& index, const std::string& block,
                          const std::string& lane) {
    const ir::Shape& shape = t.shape;
    // Dimensions in memory order with their index expressions.
    // A compound index ("i1 + 48") is parenthesized before it is scaled.
    auto operand = [](const std::string& value) {
        const bool simple = value.find_first_of(" +-*/%()") == std::string::npos;
        return simple ? value : "(" + value + ")";
    };
    std::vector<std::pair<std::int64_t, std::string>> dims;
    for (std::size_t d = 0; d < shape.size(); ++d) dims.push_back({shape[d], operand(index[d])});
    if (t.channel_block > 0) {
        const std::int64_t b = t.channel_block;
        const std::string channel = dims[1].second;
        dims[1] = {shape[1] / b, block.empty() ? "(" + channel + " / " + std::to_string(b) + ")" : block};
        // One block of all channels (NHWC): the lane is the channel.
        const std::string modulo = shape[1] == b ? channel : "(" + channel + " % " + std::to_string(b) + ")";
        dims.push_back({b, lane.empty() ? modulo : lane});
    }
    std::string expression;
    std::int64_t stride = 1;
    for (std::size_t d = dims.size(); d-- > 0;) {
        const auto& [extent, value] = dims[d];
        if (extent != 1 && value != "0") {
            const std::string term = stride == 1 ? value : value + "*" + std::to_string(stride);
            expression = expression.empty() ? term : term + " + " + expression;
        }
        stride *= extent;
    }
    return expression.empty() ? "0" : expression;
}

std::string KernelBuilder::offset(const ir::Tensor& t) const {
    const ir::Shape& out = result().shape;
    const std::size_t shift = out.size() - t.shape.size();
    std::vector<std::string> index;
    for (std::size_t d = 0; d < t.shape.size(); ++d)
        index.push_back(t.shape[d] == 1 ? "0" : "i" + std::to_string(d + shift));
    const bool named_lanes = loop_block_ > 0 && t.channel_block == loop_block_ && shift == 0;
    return layout_offset(t, index, named_lanes ? "c0" : "", named_lanes ? "c1" : "");
}

std::string KernelBuilder::output_offset() const { return offset(result()); }

std::string KernelBuilder::open_channel_block_loops(const ir::Shape& shape) const {
    const std::string b = std::to_string(loop_block_);
    return "for (int64_t i0 = 0; i0 < " + std::to_string(shape[0]) + "; ++i0)\n" +
           "for (int64_t c0 = 0; c0 < " + std::to_string(shape[1] / loop_block_) + "; ++c0)\n" +
           "for (int64_t i2 = 0; i2 < " + std::to_string(shape[2]) + "; ++i2)\n" +
           "for (int64_t i3 = 0; i3 < " + std::to_string(shape[3]) + "; ++i3)\n" +
           "#pragma omp simd\n" +
           "for (int64_t c1 = 0; c1 < " + b + "; ++c1) {\n" +
           "    const int64_t i1 = c0 * " + b + " + c1;\n" +
           "    (void)i1;\n";
}

std::string KernelBuilder::elementwise_expression(const ir::Node& node,
                                                  const std::vector<std::string>& x) const {
    const std::string type(ir::c_type(graph_.tensor(node.output).dtype));
    switch (node.op) {
        case ir::Op::Relu: return "sol_relu(" + x[0] + ")";
        case ir::Op::Clamp:
            return "sol_clamp<" + type + ">(" + x[0] + ", " +
                   literal(node.attrs.get_float("min"), graph_.tensor(node.output).dtype) + ", " +
                   literal(node.attrs.get_float("max"), graph_.tensor(node.output).dtype) + ")";
        case ir::Op::Sigmoid: return "sol_sigmoid(" + x[0] + ")";
        case ir::Op::Tanh: return "std::tanh(" + x[0] + ")";
        case ir::Op::Gelu:
            return (node.attrs.get_int("approximate", 0) ? "sol_gelu_tanh(" : "sol_gelu(") + x[0] + ")";
        case ir::Op::Silu: return "sol_silu(" + x[0] + ")";
        case ir::Op::Hardswish: return "sol_hardswish(" + x[0] + ")";
        case ir::Op::Hardsigmoid: return "sol_hardsigmoid(" + x[0] + ")";
        case ir::Op::Neg: return "(-" + x[0] + ")";
        case ir::Op::Exp: return "std::exp(" + x[0] + ")";
        case ir::Op::Log: return "std::log(" + x[0] + ")";
        case ir::Op::Sqrt: return "std::sqrt(" + x[0] + ")";
        case ir::Op::Rsqrt: return "sol_rsqrt(" + x[0] + ")";
        case ir::Op::Add: return "(" + x[0] + " + " + x[1] + ")";
        case ir::Op::Sub: return "(" + x[0] + " - " + x[1] + ")";
        case ir::Op::Mul: return "(" + x[0] + " * " + x[1] + ")";
        case ir::Op::Div: return "(" + x[0] + " / " + x[1] + ")";
        case ir::Op::MulAdd: return "(" + x[0] + " * " + x[1] + " + " + x[2] + ")";
        case ir::Op::ReluGrad: return "sol_relu_grad(" + x[0] + ", " + x[1] + ")";
        case ir::Op::GeluGrad:
            return (node.attrs.get_int("approximate", 0) ? "sol_gelu_tanh_grad(" : "sol_gelu_grad(") + x[0] + ", " +
                   x[1] + ")";
        case ir::Op::ClampGrad:
            return std::string(node.attrs.get_int("inclusive", 1) ? "sol_clamp_grad_inclusive(" : "sol_clamp_grad_exclusive(") +
                   x[0] + ", " + x[1] + ", " + literal(node.attrs.get_float("min"), ir::DType::Float32) + ", " +
                   literal(node.attrs.get_float("max"), ir::DType::Float32) + ")";
        case ir::Op::Expand: return x[0];  // the operand is read at its broadcast position
        case ir::Op::Dropout: {
            // The element's index in the output's logical (row-major) order:
            // the same mask whatever layout or kernel computes it.
            const ir::Shape& shape = graph_.tensor(node.output).shape;
            std::string index = shape.empty() ? "0" : "i0";
            for (std::size_t d = 1; d < shape.size(); ++d)
                index = "(" + index + ")*" + std::to_string(shape[d]) + " + i" + std::to_string(d);
            const double p = node.attrs.get_float("p");
            return "sol_dropout(" + x[0] + ", " + x[1] + ", " + index + ", " + literal(p, ir::DType::Float32) + ", " +
                   literal(1.0 / (1.0 - p), ir::DType::Float32) + ")";
        }
        default:
            throw Error("internal: op '" + std::string(ir::name(node.op)) +
                        "' reached the elementwise emitter; a lowering pass is missing");
    }
}

std::string KernelBuilder::epilogue_and_store(const std::string& value) {
    std::string code;
    int running = anchor().output;
    for (std::size_t k = anchor_position_ + 1; k < cluster_.size(); ++k) {
        const ir::Node& node = graph_.nodes()[cluster_[k]];
        std::vector<std::string> operands;
        for (int input : node.inputs) operands.push_back(input == running ? value : element(input));
        code += value + " = " + elementwise_expression(node, operands) + ";  // " +
                std::string(ir::name(node.op)) + "\n";
        running = node.output;
    }
    return code + "out[" + output_offset() + "] = " + value + ";\n";
}

std::string KernelBuilder::parallel_for(int collapse, std::int64_t work) const {
    if (work < target_.parallel_threshold || collapse < 1) return "";
    return collapse == 1 ? "#pragma omp parallel for schedule(static)\n"
                         : "#pragma omp parallel for collapse(" + std::to_string(collapse) + ") schedule(static)\n";
}

std::string KernelBuilder::open_loops(const ir::Shape& shape, std::size_t first, std::size_t last) const {
    std::string code;
    for (std::size_t d = first; d < last; ++d)
        code += "for (int64_t i" + std::to_string(d) + " = 0; i" + std::to_string(d) + " < " +
                std::to_string(shape[d]) + "; ++i" + std::to_string(d) + ")\n";
    return code;
}

std::vector<int> KernelBuilder::arguments() const {
    std::vector<int> ids = read_tensors_;
    ids.push_back(result().id);
    return ids;
}

std::string KernelBuilder::description() const {
    std::string text;
    for (int index : cluster_) {
        const ir::Node& node = graph_.nodes()[index];
        text += (text.empty() ? "" : " + ") + std::string(ir::name(node.op));
    }
    const ir::Tensor& out = result();
    return text + " -> " + std::string(ir::short_name(out.dtype)) + ir::to_string(out.shape);
}

int KernelBuilder::in_place_operand() const {
    if (has_prologue() || !ir::has_trait(anchor().op, ir::Elementwise)) return -1;
    // Dropout's mask hashes the element's index: still the element written.
    const ir::Tensor& out = result();
    for (int id : read_tensors_) {
        const ir::Tensor& t = graph_.tensor(id);
        if (t.kind == ir::TensorKind::Intermediate && !graph_.is_output(id) && t.shape == out.shape &&
            t.dtype == out.dtype && t.channel_block == out.channel_block)
            return id;
    }
    return -1;
}

std::string KernelBuilder::function_source(const std::string& name) const {
    // Pointers that may alias (the output computed in place) must not be
    // declared __restrict__.
    const int aliased = in_place_operand();
    std::ostringstream source;
    source << "// " << description() << "\n";
    source << "extern \"C\" void " << name << "(void* const* args) {\n";
    for (std::size_t k = 0; k < read_tensors_.size(); ++k) {
        const ir::Tensor& t = graph_.tensor(read_tensors_[k]);
        source << "    const " << ir::c_type(t.dtype) << (read_tensors_[k] == aliased ? "* a" : "* __restrict__ a") << k
               << " = static_cast<const " << ir::c_type(t.dtype) << "*>(args[" << k << "]);  // "
               << ir::short_name(t.dtype) << ir::to_string(t.shape) << (read_tensors_[k] == aliased ? ", may be out" : "")
               << "\n";
    }
    source << "    " << value_type() << (aliased >= 0 ? "* out" : "* __restrict__ out") << " = static_cast<"
           << value_type() << "*>(args[" << read_tensors_.size() << "]);\n";
    // Indent the body by four spaces for the reader of generated code.
    std::istringstream lines(body.str());
    for (std::string line; std::getline(lines, line);)
        source << (line.empty() || line[0] == '#' ? "" : "    ") << line << "\n";
    source << "}\n";
    return source.str();
}

}  // namespace sol::codegen::cpu
