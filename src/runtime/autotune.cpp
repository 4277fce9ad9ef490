#include "sol/runtime/autotune.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <unistd.h>

#include "sol/log.h"

namespace sol::runtime {
namespace {

std::size_t byte_count(const ir::Tensor& t) { return ir::element_count(t.shape) * ir::byte_size(t.dtype); }

// Scratch memory for every tensor either kernel touches; freed on scope exit.
class ScratchBuffers {
public:
    ScratchBuffers(devices::Device& device, const ir::Graph& graph, const std::set<int>& tensors) : device_(device) {
        std::mt19937 engine(1234);
        std::uniform_real_distribution<float> value(-1.0f, 1.0f);
        for (int id : tensors) {
            const ir::Tensor& t = graph.tensor(id);
            std::vector<char> host(std::max<std::size_t>(byte_count(t), 1), 0);
            if (t.dtype == ir::DType::Float32)
                for (std::size_t k = 0; k < host.size() / sizeof(float); ++k)
                    reinterpret_cast<float*>(host.data())[k] = value(engine);
            void* memory = device.allocate(host.size());
            device.copy_from_host(memory, host.data(), host.size());
            buffers_[id] = memory;
        }
    }
    ~ScratchBuffers() {
        for (const auto& [id, memory] : buffers_) device_.release(memory);
    }
    std::vector<void*> pointers(const std::vector<int>& ids) const {
        std::vector<void*> result;
        for (int id : ids) result.push_back(buffers_.at(id));
        return result;
    }

private:
    devices::Device& device_;
    std::map<int, void*> buffers_;
};

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
    ScratchBuffers scratch(device, graph, std::set<int>(arguments.begin(), arguments.end()));
    std::vector<void*> args = scratch.pointers(arguments);
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
    ScratchBuffers scratch(device, graph, std::set<int>(arguments.begin(), arguments.end()));
    const std::vector<void*> args = scratch.pointers(arguments);
    return median_seconds(device, runs, [&] { device.launch(function, args.data()); });
}

// One line per call: "<index> dfp" or "<index> library <variant>".
std::map<int, int> load_tuning(const std::filesystem::path& path) {
    std::map<int, int> choices;
    std::ifstream in(path);
    int call = 0;
    std::string backend;
    while (in >> call >> backend) {
        int variant = 0;
        if (backend == "library" && !(in >> variant)) break;
        choices[call] = backend == "dfp" ? kGenerated : variant;
    }
    return choices;
}

void save_tuning(const std::filesystem::path& path, const std::map<int, int>& choices) {
    const std::filesystem::path partial = path.string() + ".partial" + std::to_string(::getpid());
    {
        std::ofstream out(partial);
        for (const auto& [call, choice] : choices)
            out << call << ' ' << (choice == kGenerated ? "dfp" : "library " + std::to_string(choice)) << '\n';
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
