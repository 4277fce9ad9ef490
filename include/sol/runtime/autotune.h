// Autotuning: where a layer can run both in a library (oneDNN) and in
// generated code, the runtime times both on this machine and keeps the
// faster. The choices are stored next to the compiled module in the cache,
// per thread count, so a warm start does not measure again.
#pragma once

#include <filesystem>
#include <map>
#include <vector>

#include "sol/backends/library_kernel.h"
#include "sol/devices/device.h"
#include "sol/ir/graph.h"

namespace sol::runtime {

struct TuningTimes {
    double library_seconds = 0;
    double generated_seconds = 0;
};

// Median time per call (`runs` calls after one warm-up) of a library kernel
// (after its prepare()) and of a generated kernel computing the same
// cluster, on scratch buffers of small random values.
TuningTimes time_both(devices::Device& device, const ir::Graph& graph, backends::LibraryKernel& library,
                      const std::vector<int>& library_arguments, devices::KernelFunction generated,
                      const std::vector<int>& generated_arguments, int runs = 5);

// Choices per kernel call index: true = generated code. A missing or
// unreadable file gives no choices; saving is best effort (atomic rename).
std::map<int, bool> load_tuning(const std::filesystem::path& path);
void save_tuning(const std::filesystem::path& path, const std::map<int, bool>& choices);

}  // namespace sol::runtime
