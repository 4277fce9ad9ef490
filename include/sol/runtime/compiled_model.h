// A compiled network ready to run: the loaded kernels, the order to call
// them in, and where every tensor lives. Plain C++ with no Python inside, so
// the framework bindings and a deployed library share it.
//
// Tensors the framework owns (inputs, parameters, outputs) are passed in by
// pointer on every call and never copied. Intermediates live in a workspace
// taken from a pool per call, so several threads may run one model at once.
// Values computed from parameters only (folded BatchNorm weights) are kept
// between calls and recomputed when the caller says parameters changed.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "sol/devices/device.h"
#include "sol/ir/graph.h"

namespace sol::runtime {

struct CompileOptions {
    // Time library kernels against generated code where both can run a
    // layer and keep the faster (see autotune.h); off: the device's
    // heuristic (the library wherever it supports the layer).
    bool autotuning = true;
    int threads = 0;  // > 0: OpenMP threads to measure with (the framework's count)
    // Keep what deploy/ needs to rebuild this model elsewhere (the lowered
    // graph, the calls with autotuning's choices, the module source).
    bool keep_for_deployment = false;
    // The parameters change before every call (the forward and backward
    // models of a training step): library kernels reorder weights per call
    // instead of keeping reordered copies (LibraryKernel::reorder_weights_in_run).
    bool weights_change_every_call = false;
    // How the device lays out the tensors its kernels share: one of
    // Device::layouts(); empty: the device's own choice.
    std::string layout;
};

// What a compiled model is made of, kept with CompileOptions::keep_for_deployment.
struct DeploymentArtifacts {
    std::string device;                      // Device::name()
    ir::Graph graph;                         // lowered by the device
    std::vector<codegen::KernelCall> calls;  // autotuning's choices applied, nothing left to measure
    codegen::GeneratedModule module;         // the source the calls' functions come from
};

class CompiledModel {
public:
    // Generates, compiles (through the cache) and loads the kernels of a
    // graph that went through the pass pipeline.
    CompiledModel(const ir::Graph& graph, devices::Device& device, const CompileOptions& options = {});
    // Loads kernels built before, without generating or compiling anything
    // (a deployed library runs its own): `graph` and `calls` as
    // DeploymentArtifacts kept them, `library` holding the calls' functions.
    CompiledModel(const ir::Graph& lowered, const std::vector<codegen::KernelCall>& calls,
                  std::shared_ptr<jit::SharedLibrary> library, devices::Device& device);
    ~CompiledModel();
    CompiledModel(const CompiledModel&) = delete;
    CompiledModel& operator=(const CompiledModel&) = delete;

    struct TensorInfo {
        std::string name;
        ir::Shape shape;
        ir::DType dtype;
    };
    const std::vector<TensorInfo>& inputs() const { return inputs_; }
    const std::vector<TensorInfo>& parameters() const { return parameters_; }
    const std::vector<TensorInfo>& outputs() const { return outputs_; }
    std::size_t kernel_calls() const { return steps_.size(); }
    std::size_t library_calls() const;  // steps run by a vendor library (dnn), not generated code
    int unique_kernels() const { return unique_kernels_; }
    // Calls that compute another kernel's result inside them (depth-first
    // fusion), and every per-call step's description in execution order
    // ("concat + mul + add + relu + adaptive_avg_pool2d -> f32[1, 1024, 1, 1]  # origins").
    int depth_first_calls() const { return depth_first_calls_; }
    // Reshapes that run as no step at all: their output is their input's memory.
    int aliased_reshapes() const { return aliased_reshapes_; }
    std::vector<std::string> kernel_descriptions() const;
    std::size_t workspace_bytes() const { return workspace_bytes_; }
    // The layout the device lowered the graph with (CompileOptions::layout,
    // else the device's own choice); empty for a model loaded prebuilt.
    const std::string& layout() const { return layout_; }
    // How many layouts were compiled and timed to choose layout()
    // (runtime/choose_layout.h); 0 when the choice came from the cache or
    // none was timed.
    int timed_layouts() const { return timed_layouts_; }
    void set_timed_layouts(int count) { timed_layouts_ = count; }
    // The most per-call memory one library kernel takes inside the workspace
    // (LibraryKernel::workspace_bytes, 64-byte aligned): its scratchpad and
    // operands reordered into its layouts.
    std::size_t largest_library_scratch() const;
    // Memory the model keeps between calls for parameter-derived values
    // (folded weights, constants), not counting library kernels' own copies.
    std::size_t derived_bytes() const { return derived_bytes_; }
    // What library kernels keep between calls (LibraryKernel::kept_bytes):
    // their weights reordered into the library's layouts.
    std::size_t library_kept_bytes() const;
    // Library calls whose backend autotuning chose, and how many of those it
    // timed while loading (0 when the choices came from the cache).
    int tuned_calls() const { return tuned_calls_; }
    int measured_calls() const { return measured_calls_; }
    // With SOL_PROFILE=1: per per-call step, its description and its time in
    // seconds on every call so far (empty otherwise).
    std::vector<std::pair<std::string, std::vector<double>>> profile() const;
    std::string library_path() const;
    // Null unless compiled with CompileOptions::keep_for_deployment.
    const DeploymentArtifacts* deployment() const { return deployment_.get(); }

    // Pointers in the order of inputs(), parameters() and outputs(). Throws
    // sol::Error when a count is wrong or a pointer is null. `threads` > 0
    // sets the OpenMP threads of this call's kernels: the framework's count,
    // since SOL's OpenMP runtime (the system's, shared by generated code and
    // oneDNN) is not the framework's own and would otherwise use every core.
    void run(const std::vector<void*>& inputs, const std::vector<void*>& parameters,
             const std::vector<void*>& outputs, bool parameters_changed, int threads = 0);

private:
    // Where a tensor's data is during a call.
    enum class Place { Input, Parameter, Output, Derived, Workspace, Constant };
    struct Location {
        Place place = Place::Constant;
        std::size_t index = 0;  // slot (Input/Parameter/Output), buffer (Derived) or offset (Workspace)
    };
    struct Step {
        devices::KernelFunction function = nullptr;               // generated code, or
        std::unique_ptr<backends::LibraryKernel> library;         // a vendor library call
        std::vector<int> arguments;
        bool parameter_stage = false;
        int may_overwrite = -1;   // codegen::KernelCall::may_overwrite
        // A library kernel's own per-call memory in the workspace
        // (LibraryKernel::workspace_bytes), passed after its output; -1: none.
        std::int64_t scratch_offset = -1;
        std::string description;  // for the profile
    };
    struct OutputCopy {
        int tensor;
        std::size_t output;
        std::size_t bytes;
    };
    struct CallContext;

    // Everything after the kernels exist: steps (and autotuning), storage,
    // the parameter stage's schedule, the workspace plan.
    void load(const ir::Graph& graph, const std::vector<codegen::KernelCall>& calls, const CompileOptions& options);
    void run_steps(CallContext& context);  // the per-call steps
    // The parameter-stage steps, each library kernel's prepare() as soon as
    // its weights are computed, and each transient buffer alive only from
    // its producer to its last reader, so at most a few exist at once.
    void run_parameter_stage(CallContext& context);
    void prepare(const Step& step, CallContext& context);
    void addresses(const Step& step, const CallContext& context, std::vector<void*>& args) const;
    void* address(int tensor, const CallContext& context) const;
    void* acquire_workspace();
    void release_workspace(void* workspace);

    devices::Device& device_;
    std::string layout_;
    int timed_layouts_ = 0;
    std::shared_ptr<jit::SharedLibrary> library_;
    std::unique_ptr<DeploymentArtifacts> deployment_;
    std::vector<TensorInfo> inputs_, parameters_, outputs_;
    std::vector<Location> locations_;  // per tensor id
    std::vector<Step> steps_;
    std::vector<OutputCopy> output_copies_;
    std::vector<void*> derived_buffers_;
    // Derived buffers only library kernels' prepare() reads: allocated for
    // the parameter stage only (nullptr in between), so the model does not
    // hold folded weights next to the library's reordered copy.
    struct TransientBuffer {
        std::size_t index;  // into derived_buffers_
        std::size_t bytes;
    };
    std::vector<TransientBuffer> transient_buffers_;
    // The parameter stage, per position p (0: before the first step; p > 0:
    // at step p - 1): transient buffers allocated for that step, then the
    // library kernels that prepare and the buffers released after it.
    struct StageEvents {
        std::vector<std::size_t> allocations, prepares, releases;  // into transient_buffers_, steps_, transient_buffers_
    };
    std::vector<StageEvents> stage_schedule_;
    std::size_t workspace_bytes_ = 0;
    std::size_t derived_bytes_ = 0;
    int tuned_calls_ = 0, measured_calls_ = 0;
    int unique_kernels_ = 0;
    int depth_first_calls_ = 0;
    int aliased_reshapes_ = 0;

    std::shared_mutex derived_mutex_;  // writers: the parameter stage
    bool has_parameter_stage_ = false;
    std::atomic<bool> derived_ready_{false};
    // SOL_PROFILE=1: seconds per step summed over all calls, printed (heaviest
    // first) when the model is destroyed. Off by default: no clock reads.
    bool profiling_ = false;
    mutable std::mutex profile_mutex_;
    std::vector<double> step_seconds_;
    std::vector<std::vector<double>> step_samples_;  // per step, one time per call
    std::size_t profiled_calls_ = 0;
    void print_profile() const;

    std::mutex pool_mutex_;
    std::vector<void*> workspace_pool_;
};

}  // namespace sol::runtime
