// Autotuning: where a layer can run both in a library (oneDNN) and in
// generated code, the runtime times both on this machine and keeps the
// faster. The choices are stored next to the compiled module in the cache,
// per thread count, so a warm start does not measure again.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sol/backends/library_kernel.h"
#include "sol/devices/device.h"
#include "sol/ir/graph.h"

namespace sol::runtime {

// Median time per call (at least `runs` calls after one warm-up, more for
// kernels of microseconds), on scratch buffers
// of small random values, of a library kernel's current variant (after its
// prepare()) and of a generated kernel.
double time_library(devices::Device& device, const ir::Graph& graph, backends::LibraryKernel& library,
                    const std::vector<int>& arguments, int runs = 5);
double time_generated(devices::Device& device, const ir::Graph& graph, devices::KernelFunction function,
                      const std::vector<int>& arguments, int runs = 5);

// The choice per kernel call index: the library kernel's variant (>= 0), or
// kGenerated. A library variant keeps its name (LibraryKernel::variant_name)
// too: variants depend on the CPU and the library's version (Winograd only
// with AVX-512), so a cache shared by other machines, or kept across a
// library update, can list another variant under the same index; the
// runtime measures such a call again. A missing or unreadable file gives no
// choices; saving is best effort (atomic rename).
constexpr int kGenerated = -1;
struct TuningChoice {
    int variant = kGenerated;
    std::string name;  // the variant's name when it was measured; empty: not recorded
};
std::map<int, TuningChoice> load_tuning(const std::filesystem::path& path);
void save_tuning(const std::filesystem::path& path, const std::map<int, TuningChoice>& choices);

}  // namespace sol::runtime
