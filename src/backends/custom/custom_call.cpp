#include "sol/backends/custom/custom_call.h"

#include <array>
#include <cstring>
#include <string>
#include <utility>

#include "sol/custom_layer.h"
#include "sol/error.h"
#include "sol/jit/shared_library.h"

namespace sol::backends::custom {
namespace {

// Pointers a user's function may take: context aside, a backward takes
// 1 + 2 x (inputs + parameters).
constexpr std::size_t kMaxArguments = 64;

// Every parameter of the user's function is a pointer, so calling it through
// a type with as many void* parameters is the same call in the C calling
// convention of every platform SOL targets.
template <std::size_t... I>
void call_with(void* function, void* context, void* const* args, std::index_sequence<I...>) {
    using Function = void (*)(void*, decltype((void)I, static_cast<void*>(nullptr))...);
    reinterpret_cast<Function>(function)(context, args[I]...);
}

template <std::size_t N = 0>
void call(std::size_t count, void* function, void* context, void* const* args) {
    if constexpr (N > kMaxArguments) {
        throw Error("a custom layer's function takes at most " + std::to_string(kMaxArguments) + " tensors");
    } else {
        if (count == N) return call_with(function, context, args, std::make_index_sequence<N>{});
        call<N + 1>(count, function, context, args);
    }
}

sol_tensor_info describe(const ir::Shape& shape, const std::string& layer) {
    if (shape.size() > SOL_MAX_RANK)
        throw Error("custom layer " + layer + ": a tensor of rank " + std::to_string(shape.size()) +
                    " (at most " + std::to_string(SOL_MAX_RANK) + ")");
    sol_tensor_info info{};
    info.rank = static_cast<std::int32_t>(shape.size());
    for (std::size_t d = 0; d < shape.size(); ++d) info.shape[d] = shape[d];
    info.numel = ir::element_count(shape);
    return info;
}

class CustomCall final : public LibraryKernel {
public:
    CustomCall(const ir::Graph& graph, const ir::Node& node, const std::vector<int>& arguments,
               const std::string& device)
        : backward_(node.op == ir::Op::CustomBackward) {
        const std::string layer = "'" + node.attrs.get_string("name") + "'" +
                                  (node.origin.empty() ? "" : " at " + node.origin);
        if (!node.attrs.has(device + kLibrarySuffix)) {
            std::string devices;
            for (const auto& [key, value] : node.attrs.all())
                if (key.ends_with(kLibrarySuffix))
                    devices += (devices.empty() ? "" : ", ") + key.substr(0, key.size() - std::strlen(kLibrarySuffix));
            throw Error("custom layer " + layer + " has no kernel for " + device + " (it has kernels for: " + devices +
                        ")");
        }
        const std::string forward_name = node.attrs.get_string(device + ".forward");
        const std::string backward_name = node.attrs.get_string(device + ".backward");
        try {
            library_ = std::make_shared<jit::SharedLibrary>(node.attrs.get_string(device + kLibrarySuffix));
            const std::string& wanted = backward_ ? backward_name : forward_name;
            if (wanted.empty()) throw Error("the layer names no backward function");
            function_ = library_->symbol(wanted);
            // The backward too, so a missing one fails when the model is
            // compiled, not at the first backward pass.
            if (!backward_ && !backward_name.empty()) library_->symbol(backward_name);
        } catch (const Error& error) {
            throw Error("custom layer " + layer + ": " + error.what());
        }
        // Operands: (dy,) inputs..., parameters...; the output last.
        const std::size_t first = backward_ ? 1 : 0;
        const std::size_t inputs = static_cast<std::size_t>(node.attrs.get_int("input_count"));
        operands_ = arguments.size() - 1 - first;
        for (std::size_t k = 0; k < operands_; ++k) {
            const ir::Shape& shape = graph.tensor(arguments[first + k]).shape;
            (k < inputs ? inputs_ : parameters_).push_back(describe(shape, layer));
            gradient_offsets_.push_back(gradient_floats_);
            gradient_floats_ += static_cast<std::size_t>(ir::element_count(shape));
        }
        outputs_.push_back(describe(node.attrs.get_ints("shape"), layer));
        if (first + 2 * operands_ + 1 > kMaxArguments)
            throw Error("custom layer " + layer + " takes " + std::to_string(operands_) + " tensors; at most " +
                        std::to_string((kMaxArguments - 1) / 2) + " are supported");
        context_.version = SOL_CUSTOM_LAYER_VERSION;
        context_.input_count = static_cast<std::int32_t>(inputs_.size());
        context_.parameter_count = static_cast<std::int32_t>(parameters_.size());
        context_.output_count = 1;
        context_.inputs = inputs_.data();
        context_.parameters = parameters_.data();
        context_.outputs = outputs_.data();
    }

    void prepare(void* const* args) override { (void)args; }

    void run(void* const* args) override {
        if (!backward_) return call(operands_ + 1, function_, &context_, args);
        // The gradients of all operands are one flat result: the user's
        // function gets a pointer into it per operand, zeroed first so a
        // function that accumulates (+=) is right too.
        float* gradients = static_cast<float*>(args[operands_ + 1]);
        std::memset(gradients, 0, gradient_floats_ * sizeof(float));
        std::array<void*, kMaxArguments> pointers{};
        for (std::size_t k = 0; k <= operands_; ++k) pointers[k] = args[k];
        for (std::size_t k = 0; k < operands_; ++k) pointers[operands_ + 1 + k] = gradients + gradient_offsets_[k];
        call(2 * operands_ + 1, function_, &context_, pointers.data());
    }

private:
    bool backward_;
    std::shared_ptr<jit::SharedLibrary> library_;
    void* function_ = nullptr;
    std::size_t operands_ = 0;  // inputs and parameters
    std::vector<sol_tensor_info> inputs_, parameters_, outputs_;
    std::vector<std::size_t> gradient_offsets_;  // backward: per operand, in floats
    std::size_t gradient_floats_ = 0;
    sol_custom_context context_{};
};

}  // namespace

std::unique_ptr<LibraryKernel> make_custom_call(const ir::Graph& graph, int node, const std::vector<int>& arguments,
                                                const std::string& device) {
    return std::make_unique<CustomCall>(graph, graph.nodes()[node], arguments, device);
}

}  // namespace sol::backends::custom
