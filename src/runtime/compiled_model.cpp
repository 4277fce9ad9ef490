#include "sol/runtime/compiled_model.h"

#include <algorithm>
#include <cstring>

#include "sol/error.h"
#include "sol/log.h"
#include "sol/runtime/memory_plan.h"

namespace sol::runtime {

struct CompiledModel::CallContext {
    const std::vector<void*>& inputs;
    const std::vector<void*>& parameters;
    const std::vector<void*>& outputs;
    char* workspace = nullptr;
};

namespace {

std::size_t byte_count(const ir::Tensor& t) { return ir::element_count(t.shape) * ir::byte_size(t.dtype); }

}  // namespace

CompiledModel::CompiledModel(const ir::Graph& graph, devices::Device& device) : device_(device) {
    const codegen::GeneratedModule module = device.generate(graph);
    library_ = device.build(module);
    unique_kernels_ = module.unique_kernels;

    locations_.assign(graph.tensor_count(), Location{});
    for (std::size_t k = 0; k < graph.inputs().size(); ++k) {
        const ir::Tensor& t = graph.tensor(graph.inputs()[k]);
        inputs_.push_back({t.name, t.shape, t.dtype});
        locations_[t.id] = {Place::Input, k};
    }
    for (std::size_t k = 0; k < graph.parameters().size(); ++k) {
        const ir::Tensor& t = graph.tensor(graph.parameters()[k]);
        parameters_.push_back({t.name, t.shape, t.dtype});
        locations_[t.id] = {Place::Parameter, k};
    }

    // Steps, and which step writes each tensor.
    std::vector<int> writer(graph.tensor_count(), -1);
    for (const codegen::KernelCall& call : module.calls) {
        Step step{reinterpret_cast<devices::KernelFunction>(library_->symbol(call.function)), call.arguments,
                  call.parameter_stage};
        writer[call.arguments.back()] = static_cast<int>(steps_.size());
        steps_.push_back(std::move(step));
        log::debug("kernel " + call.function + ": " + call.description);
    }

    // Graph outputs are written straight into the caller's memory when a
    // per-call kernel produces them; anything else is copied there at the end.
    for (std::size_t k = 0; k < graph.outputs().size(); ++k) {
        const ir::Tensor& t = graph.tensor(graph.outputs()[k]);
        outputs_.push_back({"output" + std::to_string(k), t.shape, t.dtype});
        const int step = writer[t.id];
        if (step >= 0 && !steps_[step].parameter_stage && locations_[t.id].place == Place::Constant)
            locations_[t.id] = {Place::Output, k};
        else
            output_copies_.push_back({t.id, k, byte_count(t)});
    }

    // Values of the parameter stage, and constants read through a pointer (by
    // a kernel or as a graph output), get buffers that live as long as the model.
    auto persistent_buffer = [this](const ir::Tensor& t) {
        locations_[t.id] = {Place::Derived, derived_buffers_.size()};
        derived_buffers_.push_back(device_.allocate(byte_count(t)));
    };
    auto constant_buffer = [&](int id) {
        const ir::Tensor& t = graph.tensor(id);
        if (t.kind != ir::TensorKind::Constant || locations_[id].place != Place::Constant) return;
        persistent_buffer(t);
        const float as_float = static_cast<float>(t.value);
        const std::int64_t as_int = static_cast<std::int64_t>(t.value);
        const bool as_bool = t.value != 0.0;
        const void* value = t.dtype == ir::DType::Float32 ? static_cast<const void*>(&as_float)
                            : t.dtype == ir::DType::Int64 ? static_cast<const void*>(&as_int)
                                                          : static_cast<const void*>(&as_bool);
        device_.copy_from_host(derived_buffers_.back(), value, byte_count(t));
    };
    for (const Step& step : steps_) {
        for (int id : step.arguments) constant_buffer(id);
        const int result = step.arguments.back();
        if (step.parameter_stage && locations_[result].place == Place::Constant) persistent_buffer(graph.tensor(result));
    }
    for (const OutputCopy& copy : output_copies_) constant_buffer(copy.tensor);

    // Everything else a per-call kernel writes lives in the workspace.
    std::vector<BufferLifetime> lifetimes;
    std::vector<int> lifetime_of(graph.tensor_count(), -1);
    for (std::size_t s = 0; s < steps_.size(); ++s) {
        if (steps_[s].parameter_stage) continue;
        const int step = static_cast<int>(s);
        for (int id : steps_[s].arguments)
            if (lifetime_of[id] >= 0) lifetimes[lifetime_of[id]].last_step = step;
        const int result = steps_[s].arguments.back();
        if (locations_[result].place != Place::Constant) continue;
        lifetime_of[result] = static_cast<int>(lifetimes.size());
        lifetimes.push_back({result, byte_count(graph.tensor(result)), step, step});
    }
    // Tensors copied to outputs at the end must survive every step.
    for (const OutputCopy& copy : output_copies_)
        if (lifetime_of[copy.tensor] >= 0)
            lifetimes[lifetime_of[copy.tensor]].last_step = static_cast<int>(steps_.size());
    const MemoryPlan plan = plan_memory(lifetimes, graph.tensor_count());
    for (const BufferLifetime& b : lifetimes)
        locations_[b.tensor] = {Place::Workspace, static_cast<std::size_t>(plan.offsets[b.tensor])};
    workspace_bytes_ = plan.workspace_bytes;
    has_parameter_stage_ =
        std::any_of(steps_.begin(), steps_.end(), [](const Step& step) { return step.parameter_stage; });
}

CompiledModel::~CompiledModel() {
    for (void* buffer : derived_buffers_) device_.release(buffer);
    for (void* workspace : workspace_pool_) device_.release(workspace);
}

std::string CompiledModel::library_path() const { return library_->path().string(); }

void* CompiledModel::address(int tensor, const CallContext& context) const {
    const Location& where = locations_[tensor];
    switch (where.place) {
        case Place::Input: return context.inputs[where.index];
        case Place::Parameter: return context.parameters[where.index];
        case Place::Output: return context.outputs[where.index];
        case Place::Derived: return derived_buffers_[where.index];
        case Place::Workspace: return context.workspace + where.index;
        case Place::Constant: break;
    }
    throw Error("internal: tensor %" + std::to_string(tensor) + " has no storage");
}

void CompiledModel::run_steps(bool parameter_stage, CallContext& context) {
    std::vector<void*> args;
    for (const Step& step : steps_) {
        if (step.parameter_stage != parameter_stage) continue;
        args.clear();
        for (int id : step.arguments) args.push_back(address(id, context));
        device_.launch(step.function, args.data());
    }
}

void* CompiledModel::acquire_workspace() {
    {
        std::lock_guard<std::mutex> lock(pool_mutex_);
        if (!workspace_pool_.empty()) {
            void* workspace = workspace_pool_.back();
            workspace_pool_.pop_back();
            return workspace;
        }
    }
    return device_.allocate(std::max<std::size_t>(workspace_bytes_, 64));
}

void CompiledModel::release_workspace(void* workspace) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    workspace_pool_.push_back(workspace);
}

void CompiledModel::run(const std::vector<void*>& inputs, const std::vector<void*>& parameters,
                        const std::vector<void*>& outputs, bool parameters_changed) {
    auto check = [](const std::vector<void*>& given, std::size_t expected, const char* what) {
        if (given.size() != expected)
            throw Error(std::string("expected ") + std::to_string(expected) + " " + what + " pointers, got " +
                        std::to_string(given.size()));
        for (void* pointer : given)
            if (pointer == nullptr) throw Error(std::string("a null ") + what + " pointer was passed");
    };
    check(inputs, inputs_.size(), "input");
    check(parameters, parameters_.size(), "parameter");
    check(outputs, outputs_.size(), "output");
    CallContext context{inputs, parameters, outputs};

    // Exclusive only when the weights changed: concurrent calls with
    // unchanged parameters share the derived values without waiting.
    if (has_parameter_stage_ && (parameters_changed || !derived_ready_.load())) {
        std::unique_lock<std::shared_mutex> lock(derived_mutex_);
        run_steps(true, context);
        derived_ready_ = true;
    }
    std::shared_lock<std::shared_mutex> reading(derived_mutex_);
    context.workspace = static_cast<char*>(acquire_workspace());
    try {
        run_steps(false, context);
        device_.synchronize();
        // Host memory on the host device; a device with its own memory will
        // need a device-to-device copy in the Device interface here.
        for (const OutputCopy& copy : output_copies_)
            std::memcpy(outputs[copy.output], address(copy.tensor, context), copy.bytes);
    } catch (...) {
        release_workspace(context.workspace);
        throw;
    }
    release_workspace(context.workspace);
}

}  // namespace sol::runtime
