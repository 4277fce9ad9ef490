#include "sol/ir/shape_inference.h"

#include <algorithm>
#include <string>

#include "sol/error.h"

namespace sol::ir {
namespace {

[[noreturn]] void fail(const std::string& message) { throw ShapeError(message); }

std::string describe(const Tensor& t) {
    return std::string(name(t.dtype)) + to_string(t.shape);
}

void expect_rank(const Tensor& t, std::size_t rank, const char* what) {
    if (t.shape.size() != rank)
        fail(std::string(what) + " must have rank " + std::to_string(rank) + ", got " + describe(t));
}

// Pairs such as stride=[sh, sw]; a single value means both.
std::vector<std::int64_t> pair_attribute(const Attributes& attrs, const std::string& key,
                                         std::vector<std::int64_t> fallback) {
    auto values = attrs.get_ints(key, std::move(fallback));
    if (values.size() == 1) values.push_back(values[0]);
    if (values.size() != 2) fail("attribute '" + key + "' needs 2 values, got " + std::to_string(values.size()));
    return values;
}

std::int64_t normalize_axis(std::int64_t axis, std::size_t rank) {
    const auto r = static_cast<std::int64_t>(rank);
    if (axis < -r || axis >= std::max<std::int64_t>(r, 1))
        fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
    return axis < 0 ? axis + r : axis;
}

TensorType infer_conv2d(const std::vector<const Tensor*>& in, const Attributes& attrs) {
    const Tensor& x = *in[0];
    const Tensor& w = *in[1];
    expect_rank(x, 4, "conv2d input");
    expect_rank(w, 4, "conv2d weight");
    const std::int64_t groups = attrs.get_int("groups", 1);
    const auto stride = pair_attribute(attrs, "stride", {1, 1});
    const auto padding = pair_attribute(attrs, "padding", {0, 0});
    const auto dilation = pair_attribute(attrs, "dilation", {1, 1});
    if (groups < 1 || x.shape[1] % groups != 0 || w.shape[0] % groups != 0)
        fail("groups=" + std::to_string(groups) + " must divide input channels " +
             std::to_string(x.shape[1]) + " and output channels " + std::to_string(w.shape[0]));
    if (w.shape[1] * groups != x.shape[1])
        fail("weight " + describe(w) + " expects " + std::to_string(w.shape[1] * groups) +
             " input channels, input " + describe(x) + " has " + std::to_string(x.shape[1]));
    if (in.size() == 3 && in[2]->shape != Shape{w.shape[0]})
        fail("bias " + describe(*in[2]) + " must have shape [" + std::to_string(w.shape[0]) + "]");
    for (int i = 0; i < 2; ++i)
        if (stride[i] < 1 || dilation[i] < 1 || padding[i] < 0)
            fail("stride and dilation must be >= 1 and padding >= 0");
    Shape out{x.shape[0], w.shape[0], 0, 0};
    for (int i = 0; i < 2; ++i) {
        out[2 + i] = window_output_size(x.shape[2 + i], w.shape[2 + i], stride[i], padding[i],
                                        dilation[i], false);
        if (out[2 + i] < 1)
            fail("kernel " + to_string(w.shape) + " does not fit input " + describe(x) +
                 " with this padding and dilation");
    }
    return {out, DType::Float32};
}

TensorType infer_linear(const std::vector<const Tensor*>& in) {
    const Tensor& x = *in[0];
    const Tensor& w = *in[1];
    expect_rank(w, 2, "linear weight");
    if (x.shape.empty() || x.shape.back() != w.shape[1])
        fail("input " + describe(x) + " does not match weight " + describe(w) +
             " (last input extent must equal weight's second extent)");
    if (in.size() == 3 && in[2]->shape != Shape{w.shape[0]})
        fail("bias " + describe(*in[2]) + " must have shape [" + std::to_string(w.shape[0]) + "]");
    Shape out = x.shape;
    out.back() = w.shape[0];
    return {out, DType::Float32};
}

TensorType infer_batch_norm(const std::vector<const Tensor*>& in, const Attributes& attrs) {
    const Tensor& x = *in[0];
    if (attrs.get_float("eps") < 0) fail("eps must not be negative");
    if (x.shape.size() < 2) fail("batch_norm input must have a channel axis, got " + describe(x));
    for (std::size_t i = 1; i < in.size(); ++i)
        if (!in[i]->shape.empty() && in[i]->shape != Shape{x.shape[1]})
            fail("statistic " + describe(*in[i]) + " must have shape [" +
                 std::to_string(x.shape[1]) + "] (or be a scalar)");
    return {x.shape, x.dtype};
}

TensorType infer_pool(Op op, const Tensor& x, const Attributes& attrs) {
    expect_rank(x, 4, "pooling input");
    Shape out = x.shape;
    if (op == Op::AdaptiveAvgPool2d) {
        const auto size = pair_attribute(attrs, "output_size", {});
        if (size[0] < 1 || size[1] < 1) fail("output_size must be positive");
        out[2] = size[0];
        out[3] = size[1];
        return {out, x.dtype};
    }
    const auto kernel = pair_attribute(attrs, "kernel", {});
    const auto stride = pair_attribute(attrs, "stride", kernel);
    const auto padding = pair_attribute(attrs, "padding", {0, 0});
    const auto dilation = pair_attribute(attrs, "dilation", {1, 1});
    const bool ceil_mode = attrs.get_int("ceil_mode", 0) != 0;
    for (int i = 0; i < 2; ++i) {
        if (kernel[i] < 1 || stride[i] < 1 || dilation[i] < 1)
            fail("kernel, stride and dilation must be >= 1");
        if (padding[i] < 0 || 2 * padding[i] > kernel[i])
            fail("padding " + std::to_string(padding[i]) + " must be at most half the kernel " +
                 std::to_string(kernel[i]));
        out[2 + i] = window_output_size(x.shape[2 + i], kernel[i], stride[i], padding[i],
                                        dilation[i], ceil_mode);
        if (out[2 + i] < 1) fail("window " + to_string(kernel) + " does not fit input " + describe(x));
    }
    return {out, x.dtype};
}

TensorType infer_reshape(const Tensor& x, const Attributes& attrs) {
    Shape out = attrs.get_ints("shape");
    int unknown = -1;
    std::int64_t known = 1;
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] == -1) {
            if (unknown >= 0) fail("reshape to " + to_string(out) + " has more than one -1");
            unknown = static_cast<int>(i);
        } else if (out[i] < 0) {
            fail("reshape to " + to_string(out) + " has a negative extent");
        } else {
            known *= out[i];
        }
    }
    const std::int64_t count = element_count(x.shape);
    if (unknown >= 0) {
        if (known == 0 || count % known != 0)
            fail("cannot reshape " + describe(x) + " to " + to_string(out));
        out[unknown] = count / known;
    }
    if (element_count(out) != count)
        fail("cannot reshape " + describe(x) + " (" + std::to_string(count) + " elements) to " +
             to_string(out));
    return {out, x.dtype};
}

TensorType infer_permute(const Tensor& x, const Attributes& attrs) {
    auto dims = attrs.get_ints("dims");
    if (dims.size() != x.shape.size())
        fail("permute dims " + to_string(dims) + " do not match input " + describe(x));
    std::vector<bool> seen(dims.size(), false);
    Shape out(dims.size());
    for (std::size_t i = 0; i < dims.size(); ++i) {
        const std::int64_t axis = normalize_axis(dims[i], dims.size());
        if (seen[axis]) fail("permute dims " + to_string(dims) + " repeat an axis");
        seen[axis] = true;
        out[i] = x.shape[axis];
    }
    return {out, x.dtype};
}

TensorType infer_concat(const std::vector<const Tensor*>& in, const Attributes& attrs) {
    const Tensor& first = *in[0];
    if (first.shape.empty()) fail("zero-dimensional tensors cannot be concatenated");
    const std::int64_t axis = normalize_axis(attrs.get_int("axis"), first.shape.size());
    Shape out = first.shape;
    out[axis] = 0;
    for (const Tensor* t : in) {
        bool fits = t->dtype == first.dtype && t->shape.size() == first.shape.size();
        for (std::size_t d = 0; fits && d < out.size(); ++d)
            fits = static_cast<std::int64_t>(d) == axis || t->shape[d] == first.shape[d];
        if (!fits)
            fail("cannot concatenate " + describe(*t) + " with " + describe(first) + " along axis " +
                 std::to_string(axis));
        out[axis] += t->shape[axis];
    }
    return {out, first.dtype};
}

TensorType infer_slice(const Tensor& x, const Attributes& attrs) {
    const std::int64_t axis = normalize_axis(attrs.get_int("axis"), x.shape.size());
    const std::int64_t start = attrs.get_int("start"), end = attrs.get_int("end"), step = attrs.get_int("step", 1);
    if (step < 1 || start < 0 || start > end || end > x.shape[axis])
        fail("slice [" + std::to_string(start) + ":" + std::to_string(end) + ":" + std::to_string(step) +
             "] of axis " + std::to_string(axis) + " does not fit " + describe(x) +
             " (needs 0 <= start <= end <= extent and step >= 1)");
    Shape out = x.shape;
    out[axis] = (end - start + step - 1) / step;
    return {out, x.dtype};
}

TensorType infer_reduction(const Tensor& x, const Attributes& attrs) {
    std::vector<bool> reduced(x.shape.size(), false);
    for (std::int64_t axis : attrs.get_ints("axes")) {
        const std::int64_t d = normalize_axis(axis, x.shape.size());
        if (reduced[d]) fail("axis " + std::to_string(axis) + " is reduced twice");
        reduced[d] = true;
    }
    const bool keepdim = attrs.get_int("keepdim", 0) != 0;
    Shape out;
    for (std::size_t d = 0; d < x.shape.size(); ++d)
        if (!reduced[d]) out.push_back(x.shape[d]);
        else if (keepdim) out.push_back(1);
    if (x.dtype == DType::Bool) fail("cannot reduce a bool tensor");
    return {out, x.dtype};
}

}  // namespace

std::int64_t window_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                std::int64_t padding, std::int64_t dilation, bool ceil_mode) {
    const std::int64_t span = input + 2 * padding - dilation * (kernel - 1) - 1;
    if (span < 0) return 0;
    std::int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    // PyTorch: the last window must start inside the input or left padding.
    if (ceil_mode && (out - 1) * stride >= input + padding) --out;
    return out;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
    const std::size_t rank = std::max(a.size(), b.size());
    Shape out(rank);
    for (std::size_t i = 0; i < rank; ++i) {
        const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
        const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
        if (da != db && da != 1 && db != 1)
            fail("shapes " + to_string(a) + " and " + to_string(b) + " do not broadcast");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

TensorType infer_type(Op op, const std::vector<const Tensor*>& in, const Attributes& attrs) {
    if (has_trait(op, FloatOnly))
        for (const Tensor* t : in)
            if (t->dtype != DType::Float32)
                fail("needs float32 inputs, got " + describe(*t));
    switch (op) {
        case Op::Conv2d: return infer_conv2d(in, attrs);
        case Op::Linear: return infer_linear(in);
        case Op::BatchNorm: return infer_batch_norm(in, attrs);
        case Op::MaxPool2d:
        case Op::AvgPool2d:
        case Op::AdaptiveAvgPool2d: return infer_pool(op, *in[0], attrs);
        case Op::Reshape: return infer_reshape(*in[0], attrs);
        case Op::Permute: return infer_permute(*in[0], attrs);
        case Op::Concat: return infer_concat(in, attrs);
        case Op::Slice: return infer_slice(*in[0], attrs);
        case Op::Mean:
        case Op::Sum: return infer_reduction(*in[0], attrs);
        case Op::Softmax:
        case Op::LogSoftmax:
            normalize_axis(attrs.get_int("axis"), in[0]->shape.size());
            return {in[0]->shape, in[0]->dtype};
        case Op::Conv2dBackwardData: {  // (dy, w): the forward conv of input_shape must give dy
            Tensor x;
            x.shape = attrs.get_ints("input_shape");
            if (infer_conv2d({&x, in[1]}, attrs).shape != in[0]->shape)
                fail("gradient " + describe(*in[0]) + " does not match a convolution of " + to_string(x.shape));
            return {x.shape, DType::Float32};
        }
        case Op::Conv2dBackwardWeight: {  // (dy, x)
            Tensor w;
            w.shape = attrs.get_ints("weight_shape");
            if (infer_conv2d({in[1], &w}, attrs).shape != in[0]->shape)
                fail("gradient " + describe(*in[0]) + " does not match a convolution with weight " + to_string(w.shape));
            return {w.shape, DType::Float32};
        }
        case Op::Custom: {  // the layer's own result shape, inferred by the frontend
            const std::int64_t inputs = attrs.get_int("input_count");
            if (inputs < 1 || inputs > static_cast<std::int64_t>(in.size()))
                fail("attribute 'input_count' is " + std::to_string(inputs) + " for " + std::to_string(in.size()) +
                     " operands");
            const Shape shape = attrs.get_ints("shape");
            for (std::int64_t extent : shape)
                if (extent < 0) fail("negative extent in result shape " + to_string(shape));
            return {shape, DType::Float32};
        }
        case Op::CustomBackward: {  // (dy, inputs..., parameters...): their gradients, flat
            std::int64_t total = 0;
            for (std::size_t k = 1; k < in.size(); ++k) total += element_count(in[k]->shape);
            if (in[0]->shape != Shape(attrs.get_ints("shape")))
                fail("gradient " + describe(*in[0]) + " does not have the layer's result shape");
            return {{total}, DType::Float32};
        }
        case Op::MaxPool2dBackward:  // (dy, x)
        case Op::AvgPool2dBackward:
        case Op::AdaptiveAvgPool2dBackward: {
            Tensor x;
            x.shape = op == Op::MaxPool2dBackward ? in[1]->shape : Shape(attrs.get_ints("input_shape"));
            const Op forward = op == Op::MaxPool2dBackward ? Op::MaxPool2d
                               : op == Op::AvgPool2dBackward ? Op::AvgPool2d
                                                             : Op::AdaptiveAvgPool2d;
            if (infer_pool(forward, x, attrs).shape != in[0]->shape)
                fail("gradient " + describe(*in[0]) + " does not match a pooling of " + to_string(x.shape));
            return {x.shape, DType::Float32};
        }
        case Op::Dropout: {
            if (in[0]->dtype != DType::Float32 || in[1]->dtype != DType::Int64 || !in[1]->shape.empty())
                fail("dropout needs a float32 tensor and a rank-0 int64 seed, got " + describe(*in[0]) + " and " +
                     describe(*in[1]));
            const double p = attrs.get_float("p");
            if (!(p >= 0.0 && p < 1.0)) fail("dropout probability must be in [0, 1), got " + std::to_string(p));
            return {in[0]->shape, DType::Float32};
        }
        case Op::Expand: {
            const Shape shape = attrs.get_ints("shape");
            if (broadcast_shapes(in[0]->shape, shape) != shape)
                fail("cannot expand " + describe(*in[0]) + " to " + to_string(shape));
            return {shape, in[0]->dtype};
        }
        case Op::MulAdd: {  // a * b + c
            for (const Tensor* operand : {in[1], in[2]})
                if (operand->dtype != in[0]->dtype)
                    fail("operands " + describe(*in[0]) + " and " + describe(*operand) + " have different dtypes");
            if (in[0]->dtype == DType::Bool) fail("arithmetic on bool tensors is not supported");
            return {broadcast_shapes(broadcast_shapes(in[0]->shape, in[1]->shape), in[2]->shape), in[0]->dtype};
        }
        case Op::ReluGrad:
        case Op::ClampGrad:
        case Op::GeluGrad:
        case Op::Add:
        case Op::Sub:
        case Op::Mul:
        case Op::Div: {
            if (in[0]->dtype != in[1]->dtype)
                fail("operands " + describe(*in[0]) + " and " + describe(*in[1]) +
                     " have different dtypes");
            if (in[0]->dtype == DType::Bool) fail("arithmetic on bool tensors is not supported");
            // PyTorch's `/` on integers gives floats; C++ would truncate.
            if (op == Op::Div && in[0]->dtype == DType::Int64)
                fail("true division of int64 tensors (a float result in PyTorch) is not supported yet");
            return {broadcast_shapes(in[0]->shape, in[1]->shape), in[0]->dtype};
        }
        default: break;
    }
    // Remaining elementwise unary ops keep shape and dtype.
    if (in[0]->dtype == DType::Bool) fail("needs a numeric input, got " + describe(*in[0]));
    return {in[0]->shape, in[0]->dtype};
}

}  // namespace sol::ir
