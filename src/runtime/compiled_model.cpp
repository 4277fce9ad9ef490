#include "sol/runtime/compiled_model.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include <omp.h>

#include "sol/error.h"
#include "sol/ir/verify.h"
#include "sol/log.h"
#include "sol/runtime/autotune.h"
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

// A reshape between row-major tensors changes no byte: its output can be the same memory as its
// input instead of a copy, when nothing else reads that input (so no kernel can compute in place
// over the one while the other is still to be read) and neither is a graph output (the caller's
// memory). Returns the input, or -1 where the copy stays.
int reshape_alias_source(const ir::Graph& graph, const codegen::KernelCall& call, const std::vector<int>& readers) {
    if (call.parameter_stage || call.nodes.size() != 1 || graph.nodes()[call.nodes.front()].op != ir::Op::Reshape)
        return -1;
    const ir::Node& reshape = graph.nodes()[call.nodes.front()];
    const ir::Tensor& in = graph.tensor(reshape.inputs.front());
    const ir::Tensor& out = graph.tensor(reshape.output);
    if (in.kind != ir::TensorKind::Intermediate || in.channel_block != 0 || out.channel_block != 0 ||
        in.dtype != out.dtype || readers[in.id] != 1)
        return -1;
    for (int output : graph.outputs())
        if (output == in.id || output == out.id) return -1;
    return in.id;
}

// Whether a cached library choice names a variant this machine runs under
// that index. Another CPU or library version sharing the cache can list
// another variant there (Winograd only with AVX-512), or fewer; a choice
// saved without a name is taken as it is.
bool is_this_machines_variant(const TuningChoice& cached, const backends::LibraryKernel& library) {
    if (cached.variant == kGenerated) return true;
    if (cached.variant >= library.variant_count()) return false;
    return cached.name.empty() || cached.name == library.variant_name(cached.variant);
}

}  // namespace

CompiledModel::CompiledModel(const ir::Graph& fused, devices::Device& device, const CompileOptions& options)
    : device_(device) {
    // The thread count autotuning measures with (the caller's thread only).
    if (options.threads > 0) omp_set_num_threads(options.threads);
    ir::Graph graph = fused;
    const std::vector<std::string> layouts = device.layouts();
    layout_ = !options.layout.empty() || layouts.empty() ? options.layout : layouts.front();
    device.lower(graph, layout_);
    ir::verify(graph, "after the " + device.name() + " device lowered it");
    codegen::GeneratedModule module = device.generate(graph);
    library_ = device.build(module);
    unique_kernels_ = module.unique_kernels;
    depth_first_calls_ = module.depth_first_calls;
    if (options.keep_for_deployment) {
        deployment_ = std::make_unique<DeploymentArtifacts>();
        deployment_->device = device.name();
        deployment_->graph = graph;
    }
    load(graph, module.calls, options);
    if (deployment_) deployment_->module = std::move(module);
}

CompiledModel::CompiledModel(const ir::Graph& lowered, const std::vector<codegen::KernelCall>& calls,
                             std::shared_ptr<jit::SharedLibrary> library, devices::Device& device)
    : device_(device), library_(std::move(library)) {
    ir::verify(lowered, "when loading prebuilt kernels");
    CompileOptions options;
    options.autotuning = false;  // the calls carry the choices
    load(lowered, calls, options);
}

void CompiledModel::load(const ir::Graph& graph, const std::vector<codegen::KernelCall>& calls,
                         const CompileOptions& options) {
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

    // Steps, and which step writes each tensor. A library call with a
    // generated alternative keeps whichever runs faster here (measured once
    // per module and thread count, then read from the cache).
    const std::filesystem::path tuning_path =
        std::filesystem::path(library_path()).replace_extension(".tuning-" + std::to_string(omp_get_max_threads()) + "t");
    std::map<int, TuningChoice> tuning =
        options.autotuning ? load_tuning(tuning_path) : std::map<int, TuningChoice>{};
    bool tuning_changed = false;
    std::vector<int> writer(graph.tensor_count(), -1);
    // The tensor whose memory each tensor is (itself, but for aliased reshapes), and how many
    // calls and graph outputs read each.
    std::vector<int> storage_of(graph.tensor_count());
    for (std::size_t id = 0; id < storage_of.size(); ++id) storage_of[id] = static_cast<int>(id);
    std::vector<int> readers(graph.tensor_count(), 0);
    for (const codegen::KernelCall& call : calls)
        for (auto id = call.arguments.begin(); id + 1 < call.arguments.end(); ++id) ++readers[*id];
    for (int output : graph.outputs()) ++readers[output];
    for (std::size_t index = 0; index < calls.size(); ++index) {
        const codegen::KernelCall& call = calls[index];
        codegen::KernelCall resolved = call;  // as a deployed copy will run it
        if (const int source = reshape_alias_source(graph, call, readers);
            source >= 0 && writer[storage_of[source]] >= 0 && !steps_[writer[storage_of[source]]].parameter_stage) {
            storage_of[call.arguments.back()] = storage_of[source];  // no step: the same bytes, read as the new shape
            ++aliased_reshapes_;
            if (deployment_) deployment_->calls.push_back(std::move(resolved));
            continue;
        }
        Step step;
        step.description = (call.backend == "dfp" ? "" : "[" + call.backend + "] ") + call.description;
        step.arguments = call.arguments;
        step.parameter_stage = call.parameter_stage;
        step.may_overwrite = call.may_overwrite;
        if (call.backend == "dfp")
            step.function = reinterpret_cast<devices::KernelFunction>(library_->symbol(call.function));
        else
            step.library = device_.instantiate(graph, call);
        if (step.library && options.weights_change_every_call) step.library->reorder_weights_in_run();
        if (step.library && call.variant > 0) step.library->use_variant(call.variant);
        const int variants = step.library ? step.library->variant_count() : 0;
        if (options.autotuning && step.library && variants + !call.alternative.empty() > 1) {
            const auto alternative = call.alternative.empty()
                                         ? nullptr
                                         : reinterpret_cast<devices::KernelFunction>(library_->symbol(call.alternative));
            const int key = static_cast<int>(index);
            if (const auto cached = tuning.find(key);
                cached != tuning.end() && !is_this_machines_variant(cached->second, *step.library)) {
                log::debug("autotuning " + call.description + ": the cached variant " +
                           std::to_string(cached->second.variant) + " (" + cached->second.name +
                           ") is not this machine's; measuring again");
                tuning.erase(cached);
            }
            if (!tuning.count(key)) {
                // Another way replaces the library's first choice only when it
                // is clearly faster: equal kernels keep the default, and a
                // noisy measurement does not flip the choice.
                constexpr double kClearlyFaster = 0.95;
                std::string report;
                double best = 0;
                for (int variant = 0; variant < variants; ++variant) {
                    step.library->use_variant(variant);
                    const double seconds = time_library(device_, graph, *step.library, call.arguments);
                    const std::string name = step.library->variant_name(variant);
                    report += " " + call.backend + " variant " + std::to_string(variant) +
                              (name.empty() ? "" : " (" + name + ")") + " " + std::to_string(seconds * 1e3) + " ms";
                    if (variant == 0 || seconds < best * kClearlyFaster) best = seconds, tuning[key] = {variant, name};
                }
                if (alternative) {
                    const double seconds = time_generated(device_, graph, alternative, call.alternative_arguments);
                    report += ", dfp " + std::to_string(seconds * 1e3) + " ms";
                    if (seconds < best * kClearlyFaster) tuning[key] = {kGenerated, ""};
                }
                tuning_changed = true;
                ++measured_calls_;
                log::debug("autotuning " + call.description + ":" + report);
            }
            const int choice = tuning.at(key).variant;
            if (choice == kGenerated && alternative) {
                step.library.reset();
                step.function = alternative;
                step.arguments = call.alternative_arguments;
                step.may_overwrite = -1;
                step.description = "[dfp, tuned] " + call.description;
                resolved.backend = "dfp";
                resolved.function = call.alternative;
                resolved.arguments = call.alternative_arguments;
                resolved.may_overwrite = -1;
                resolved.description = "[tuned] " + call.description;
            } else if (choice >= 0 && choice < variants) {
                step.library->use_variant(choice);
                resolved.variant = choice;
                if (choice > 0) {
                    const std::string name = step.library->variant_name(choice);
                    step.description = "[" + call.backend + ", variant " + std::to_string(choice) +
                                       (name.empty() ? "" : ": " + name) + "] " + call.description;
                }
            }
            ++tuned_calls_;
        }
        if (deployment_) {
            resolved.alternative.clear();
            resolved.alternative_arguments.clear();
            deployment_->calls.push_back(std::move(resolved));
        }
        writer[call.arguments.back()] = static_cast<int>(steps_.size());
        steps_.push_back(std::move(step));
        log::debug("kernel " + (call.backend == "dfp" ? call.function : "[" + call.backend + "]") + ": " +
                   call.description);
    }

    if (tuning_changed) save_tuning(tuning_path, tuning);

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
        derived_bytes_ += byte_count(t);
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
    // Parameter-stage values that only library kernels' prepare() reads (the
    // folded weights they reorder into their own layout) exist only during
    // the parameter stage: otherwise the model would hold the weights twice.
    std::vector<bool> read_per_call(graph.tensor_count(), false);
    for (const Step& step : steps_) {
        if (step.parameter_stage) continue;
        for (std::size_t k = 0; k < step.arguments.size(); ++k)
            if (!step.library || !step.library->reads_only_in_prepare(k)) read_per_call[step.arguments[k]] = true;
    }
    for (const OutputCopy& copy : output_copies_) read_per_call[copy.tensor] = true;
    // A library kernel prepares right after the last parameter-stage step it
    // depends on; the stage's schedule is indexed by that step + 1 (0: before
    // the first step).
    std::vector<int> prepare_after(steps_.size(), -1);
    for (std::size_t s = 0; s < steps_.size(); ++s)
        if (steps_[s].library)
            for (int id : steps_[s].arguments)
                if (writer[id] >= 0 && steps_[writer[id]].parameter_stage)
                    prepare_after[s] = std::max(prepare_after[s], writer[id]);
    stage_schedule_.assign(steps_.size() + 1, {});
    for (std::size_t s = 0; s < steps_.size(); ++s)
        if (steps_[s].library) stage_schedule_[prepare_after[s] + 1].prepares.push_back(s);
    // Transient buffers live from their producer to their last reader: a
    // parameter-stage step, or the step a reading prepare() follows.
    std::vector<int> last_use(writer);
    for (std::size_t s = 0; s < steps_.size(); ++s)
        for (auto id = steps_[s].arguments.begin(); id + 1 != steps_[s].arguments.end(); ++id)
            last_use[*id] = std::max(last_use[*id], steps_[s].parameter_stage ? static_cast<int>(s) : prepare_after[s]);
    for (std::size_t id = 0; id < graph.tensor_count(); ++id) {
        const Location& where = locations_[id];
        const ir::Tensor& t = graph.tensor(static_cast<int>(id));
        if (where.place != Place::Derived || read_per_call[id] || t.kind == ir::TensorKind::Constant) continue;
        device_.release(derived_buffers_[where.index]);
        derived_buffers_[where.index] = nullptr;
        derived_bytes_ -= byte_count(t);
        stage_schedule_[writer[id] + 1].allocations.push_back(transient_buffers_.size());
        stage_schedule_[last_use[id] + 1].releases.push_back(transient_buffers_.size());
        transient_buffers_.push_back({where.index, byte_count(t)});
    }

    // Everything else a per-call kernel writes lives in the workspace.
    std::vector<BufferLifetime> lifetimes;
    std::vector<int> lifetime_of(graph.tensor_count(), -1);
    for (std::size_t s = 0; s < steps_.size(); ++s) {
        if (steps_[s].parameter_stage) continue;
        const int step = static_cast<int>(s);
        for (int id : steps_[s].arguments)
            if (lifetime_of[storage_of[id]] >= 0) lifetimes[lifetime_of[storage_of[id]]].last_step = step;
        const int result = steps_[s].arguments.back();
        if (locations_[result].place != Place::Constant) continue;
        lifetime_of[result] = static_cast<int>(lifetimes.size());
        const int overwritten = steps_[s].may_overwrite;
        lifetimes.push_back({result, byte_count(graph.tensor(result)), step, step,
                             overwritten >= 0 ? storage_of[overwritten] : -1});
    }
    // Tensors copied to outputs at the end must survive every step.
    for (const OutputCopy& copy : output_copies_)
        if (lifetime_of[copy.tensor] >= 0)
            lifetimes[lifetime_of[copy.tensor]].last_step = static_cast<int>(steps_.size());
    // A library kernel's scratch memory lives during its step only, under a
    // made-up id past the graph's tensors. The parameter stage runs before
    // the workspace exists: its library calls (custom layers) need none.
    const std::size_t first_scratch_id = graph.tensor_count();
    for (std::size_t s = 0; s < steps_.size(); ++s) {
        if (!steps_[s].library || steps_[s].library->workspace_bytes() == 0) continue;
        if (steps_[s].parameter_stage)
            throw Error("internal: a parameter-stage library call (" + steps_[s].description + ") needs scratch memory");
        lifetimes.push_back({static_cast<int>(first_scratch_id + s), steps_[s].library->workspace_bytes(),
                             static_cast<int>(s), static_cast<int>(s), -1});
    }
    const MemoryPlan plan = plan_memory(lifetimes, first_scratch_id + steps_.size());
    for (const BufferLifetime& b : lifetimes) {
        if (static_cast<std::size_t>(b.tensor) >= first_scratch_id)
            steps_[b.tensor - first_scratch_id].scratch_offset = plan.offsets[b.tensor];
        else
            locations_[b.tensor] = {Place::Workspace, static_cast<std::size_t>(plan.offsets[b.tensor])};
    }
    for (std::size_t id = 0; id < storage_of.size(); ++id)
        if (storage_of[id] != static_cast<int>(id)) locations_[id] = locations_[storage_of[id]];
    workspace_bytes_ = plan.workspace_bytes;
    // Library kernels prepare (reorder) their weights in the parameter stage.
    profiling_ = std::getenv("SOL_PROFILE") != nullptr && std::string(std::getenv("SOL_PROFILE")) != "0";
    step_seconds_.assign(steps_.size(), 0.0);
    step_samples_.assign(steps_.size(), {});
    has_parameter_stage_ = std::any_of(steps_.begin(), steps_.end(),
                                       [](const Step& step) { return step.parameter_stage || step.library; });
}

std::vector<std::pair<std::string, std::vector<double>>> CompiledModel::profile() const {
    std::lock_guard<std::mutex> lock(profile_mutex_);
    std::vector<std::pair<std::string, std::vector<double>>> steps;
    if (!profiling_) return steps;
    for (std::size_t i = 0; i < steps_.size(); ++i)
        if (!steps_[i].parameter_stage) steps.emplace_back(steps_[i].description, step_samples_[i]);
    return steps;
}

std::vector<std::string> CompiledModel::kernel_descriptions() const {
    std::vector<std::string> descriptions;
    for (const Step& step : steps_)
        if (!step.parameter_stage) descriptions.push_back(step.description);
    return descriptions;
}

void CompiledModel::print_profile() const {
    std::vector<std::size_t> order(steps_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [this](auto a, auto b) { return step_seconds_[a] > step_seconds_[b]; });
    double total = 0;
    for (double seconds : step_seconds_) total += seconds;
    std::ostringstream out;
    out.precision(3);
    out << std::fixed << "profile over " << profiled_calls_ << " calls: " << total * 1e3 / profiled_calls_
        << " ms per call in kernels; heaviest steps (ms per call):";
    for (std::size_t k = 0; k < order.size() && k < 15; ++k)
        out << "\n  " << step_seconds_[order[k]] * 1e3 / profiled_calls_ << "  " << steps_[order[k]].description;
    log::progress(out.str());
}

CompiledModel::~CompiledModel() {
    if (profiling_ && profiled_calls_ > 0) print_profile();
    for (void* buffer : derived_buffers_)
        if (buffer != nullptr) device_.release(buffer);
    for (void* workspace : workspace_pool_) device_.release(workspace);
}

std::size_t CompiledModel::largest_library_scratch() const {
    std::size_t largest = 0;
    for (const Step& step : steps_)
        if (step.scratch_offset >= 0) largest = std::max(largest, (step.library->workspace_bytes() + 63) / 64 * 64);
    return largest;
}

std::size_t CompiledModel::library_kept_bytes() const {
    std::size_t total = 0;
    for (const Step& step : steps_)
        if (step.library) total += step.library->kept_bytes();
    return total;
}

std::string CompiledModel::library_path() const { return library_->path().string(); }

std::size_t CompiledModel::library_calls() const {
    return std::count_if(steps_.begin(), steps_.end(), [](const Step& step) { return step.library != nullptr; });
}

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

void CompiledModel::addresses(const Step& step, const CallContext& context, std::vector<void*>& args) const {
    args.clear();  // reused across steps: no allocation per kernel call
    for (int id : step.arguments) args.push_back(address(id, context));
    if (step.scratch_offset >= 0) args.push_back(context.workspace + step.scratch_offset);
}

void CompiledModel::run_steps(CallContext& context) {
    std::vector<double> seconds(profiling_ ? steps_.size() : 0, 0.0);
    std::vector<void*> args;
    for (std::size_t i = 0; i < steps_.size(); ++i) {
        const Step& step = steps_[i];
        if (step.parameter_stage) continue;
        addresses(step, context, args);
        const auto start = profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
        if (step.library)
            step.library->run(args.data());
        else
            device_.launch(step.function, args.data());
        if (profiling_) seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (profiling_) {
        std::lock_guard<std::mutex> lock(profile_mutex_);
        for (std::size_t i = 0; i < seconds.size(); ++i) {
            step_seconds_[i] += seconds[i];
            if (!steps_[i].parameter_stage) step_samples_[i].push_back(seconds[i]);
        }
        ++profiled_calls_;
    }
}

void CompiledModel::prepare(const Step& step, CallContext& context) {
    // Pointers of per-call tensors are not read by prepare (no workspace yet).
    std::vector<void*> args;
    for (int id : step.arguments) {
        const Place place = locations_[id].place;
        const bool per_call = place == Place::Workspace || place == Place::Output || place == Place::Input;
        args.push_back(per_call ? nullptr : address(id, context));
    }
    step.library->prepare(args.data());
}

void CompiledModel::run_parameter_stage(CallContext& context) {
    struct Transients {  // released however the stage ends
        CompiledModel& model;
        void release(const TransientBuffer& t) {
            void*& buffer = model.derived_buffers_[t.index];
            if (buffer != nullptr) model.device_.release(buffer);
            buffer = nullptr;
        }
        ~Transients() {
            for (const TransientBuffer& t : model.transient_buffers_) release(t);
        }
    } transients{*this};
    // Position p: step p - 1 of the list (none for p = 0), then the
    // prepare() calls and releases scheduled after it.
    std::vector<void*> args;
    for (std::size_t position = 0; position < stage_schedule_.size(); ++position) {
        const StageEvents& events = stage_schedule_[position];
        if (position > 0 && steps_[position - 1].parameter_stage) {
            const Step& step = steps_[position - 1];
            for (std::size_t t : events.allocations) {
                const TransientBuffer& buffer = transient_buffers_[t];
                derived_buffers_[buffer.index] = device_.allocate(buffer.bytes);
            }
            addresses(step, context, args);
            if (step.library)
                step.library->run(args.data());
            else
                device_.launch(step.function, args.data());
        }
        for (std::size_t s : events.prepares) prepare(steps_[s], context);
        for (std::size_t t : events.releases) transients.release(transient_buffers_[t]);
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
                        const std::vector<void*>& outputs, bool parameters_changed, int threads) {
    // Per calling thread: parallel regions this thread starts use it.
    if (threads > 0) omp_set_num_threads(threads);
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
        run_parameter_stage(context);
        derived_ready_ = true;
    }
    std::shared_lock<std::shared_mutex> reading(derived_mutex_);
    context.workspace = static_cast<char*>(acquire_workspace());
    try {
        run_steps(context);
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
