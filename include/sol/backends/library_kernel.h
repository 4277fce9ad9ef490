// A kernel implemented by calling a vendor library (oneDNN, later cuDNN or
// cuBLAS) instead of generated code. The runtime calls `prepare` in the
// parameter stage (after weights changed: reorder them into the library's
// preferred layout, once, never per call) and `run` on every call.
//
// Both receive the cluster's tensors in the order the code generator listed
// them for the call (codegen::KernelCall::arguments): anchor inputs, then
// the fused chain's side inputs, the output last.
#pragma once

#include <cstddef>
#include <string>

namespace sol::backends {

class LibraryKernel {
public:
    virtual ~LibraryKernel() = default;
    virtual void prepare(void* const* args) = 0;  // under the runtime's exclusive lock
    virtual void run(void* const* args) = 0;      // may run on several threads at once
    // Whether argument `index` is read by `prepare` only (weights the kernel
    // keeps reordered): the runtime need not keep a parameter-stage value
    // that only such reads use.
    // Ways the kernel can compute the same result (e.g. in the graph's
    // layouts, or reordered into the library's own); the autotuner times
    // each and picks one before the first prepare(). Variant 0 is the
    // library's best guess.
    virtual int variant_count() const { return 1; }
    virtual void use_variant(int index) { (void)index; }
    // What variant `index` runs, for logs and profiles (the library's
    // implementation name, say); empty when there is nothing to tell.
    virtual std::string variant_name(int index) const {
        (void)index;
        return {};
    }
    // Memory a run() needs beside its operands (operands reordered into the
    // library's layouts, the library's scratchpad) in the current variant.
    // The runtime plans it inside the model's per-call workspace, where it
    // reuses memory of tensors no longer needed, and passes it after the
    // output: args[arguments.size()]. 0: nothing is passed.
    virtual std::size_t workspace_bytes() const { return 0; }
    // Memory the kernel keeps between calls: its weights reordered into the
    // library's layout (none after reorder_weights_in_run()).
    virtual std::size_t kept_bytes() const { return 0; }
    // The weights change before every call (the models of a training step):
    // reorder them inside run() into its workspace instead of keeping a
    // reordered copy between calls, which would only add memory (a copy of
    // every weight per model). Called once, before the first prepare().
    virtual void reorder_weights_in_run() {}
    virtual bool reads_only_in_prepare(std::size_t index) const {
        (void)index;
        return false;
    }
};

}  // namespace sol::backends
