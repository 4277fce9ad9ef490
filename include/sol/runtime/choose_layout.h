// The network-wide layout choice: where a device can lay out the tensors its
// kernels share in more than one way (Device::layouts), which one runs a
// network faster depends on the network and the batch (the host: channels
// last wins at batch 1, channel blocks for resnet50 at batch 8), so it is
// measured, as autotuning measures single layers: every candidate is
// compiled and whole calls of each are timed, interleaved, on random inputs
// and parameters. Networks whose calls are short in the device's own
// layout (SOL_LAYOUT_TIMING_MS), or whose compile took long, keep it
// untimed. The choice is kept in the
// cache, keyed by the lowered graphs, the device, its compiler and the
// thread count, so a warm start compiles only the winner and measures
// nothing.
#pragma once

#include <memory>

#include "sol/devices/device.h"
#include "sol/ir/graph.h"
#include "sol/runtime/compiled_model.h"

namespace sol::runtime {

// The compiled model in the fastest of the device's layouts. Compiles only
// the device's own choice (no timing) when options.layout names a layout,
// the device offers one, autotuning is off, the weights change every call
// (training: the layout is not worth a second compile per step), the graph
// has a user's kernel (not run on random data), or every layout lowers the
// graph alike (no image tensors).
std::unique_ptr<CompiledModel> compile_fastest_layout(const ir::Graph& graph, devices::Device& device,
                                                      const CompileOptions& options);

}  // namespace sol::runtime
