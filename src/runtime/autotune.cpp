#include "sol/runtime/autotune.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <unistd.h>

#include "sol/log.h"
#include "scratch_buffers.h"

namespace sol::runtime {
namespace {

// Buffers for every tensor either kernel touches, in `arguments` order.
std::vector<void*> scratch_arguments(ScratchBuffers& scratch, const ir::Graph& graph, const std::vector<int>& arguments) {
    std::map<int, void*> buffer_of;
    std::vector<void*> args;
    for (int id : arguments) {
        auto found = buffer_of.find(id);
        if (found == buffer_of.end()) {
            const ir::Tensor& t = graph.tensor(id);
            found = buffer_of.emplace(id, scratch.add(ir::element_count(t.shape), t.dtype)).first;
        }
        args.push_back(found->second);
    }
    return args;
}

template <typename Call>
double median_seconds(devices::Device& device, int runs, Call call) {
    call();  // warm-up: first-touch, JIT of the library's code, caches
    device.synchronize();
    // At least `runs` calls, and more for kernels of a few microseconds
    // (up to 1 ms of them, at most 100 calls): their single times are the
    // noisiest, and they are cheap to repeat.
    constexpr double kEnough = 1e-3;
    constexpr int kMostRuns = 100;
    std::vector<double> seconds;
    double total = 0;
    for (int r = 0; r < runs || (total < kEnough && r < kMostRuns); ++r) {
        const auto start = std::chrono::steady_clock::now();
        call();
        device.synchronize();
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        total += seconds.back();
    }
    std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
    return seconds[seconds.size() / 2];
}

}  // namespace

double time_library(devices::Device& device, const ir::Graph& graph, backends::LibraryKernel& library,
                    const std::vector<int>& arguments, int runs) {
    ScratchBuffers scratch(device);
    std::vector<void*> args = scratch_arguments(scratch, graph, arguments);
    library.prepare(args.data());
    // The kernel's own per-call memory, passed after the output as the runtime does.
    struct Workspace {
        devices::Device& device;
        void* memory;
        ~Workspace() { device.release(memory); }
    } workspace{device, device.allocate(std::max<std::size_t>(library.workspace_bytes(), 64))};
    if (library.workspace_bytes() > 0) args.push_back(workspace.memory);
    return median_seconds(device, runs, [&] { library.run(args.data()); });
}

double time_generated(devices::Device& device, const ir::Graph& graph, devices::KernelFunction function,
                      const std::vector<int>& arguments, int runs) {
    ScratchBuffers scratch(device);
    const std::vector<void*> args = scratch_arguments(scratch, graph, arguments);
    return median_seconds(device, runs, [&] { device.launch(function, args.data()); });
}

// One line per call: "<index> dfp" or "<index> library <variant> [<name>]",
// the name running to the end of the line.
std::map<int, TuningChoice> load_tuning(const std::filesystem::path& path) {
    std::map<int, TuningChoice> choices;
    std::ifstream in(path);
    int call = 0;
    std::string backend;
    while (in >> call >> backend) {
        TuningChoice choice;
        if (backend == "library") {
            if (!(in >> choice.variant)) break;
            std::getline(in, choice.name);
            choice.name.erase(0, choice.name.find_first_not_of(' '));
        } else if (backend != "dfp") {
            break;  // not a file this version wrote: the rest is measured again
        }
        choices[call] = choice;
    }
    return choices;
}

void save_tuning(const std::filesystem::path& path, const std::map<int, TuningChoice>& choices) {
    const std::filesystem::path partial = path.string() + ".partial" + std::to_string(::getpid());
    {
        std::ofstream out(partial);
        for (const auto& [call, choice] : choices) {
            out << call << ' ';
            if (choice.variant == kGenerated)
                out << "dfp";
            else
                out << "library " << choice.variant << (choice.name.empty() ? "" : " " + choice.name);
            out << '\n';
        }
        if (!out) {
            log::debug("autotuning choices not saved: cannot write " + partial.string());
            return;
        }
    }
    std::error_code error;
    std::filesystem::rename(partial, path, error);
    if (error) {
        log::debug("autotuning choices not saved: " + error.message());
        std::filesystem::remove(partial, error);
    }
}

}  // namespace sol::runtime
