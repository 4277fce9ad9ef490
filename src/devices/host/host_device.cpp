#include "sol/devices/host/host_device.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>

#include "sol/backends/custom/custom_call.h"
#include "sol/codegen/cpu/generate_module.h"
#include "sol/log.h"
#include "sol/passes/assign_layouts.h"
#include "sol/passes/fuse_depth_first.h"
#include "sol/passes/merge_depthwise_into_pointwise.h"
#include "sol/support/page_memory.h"
#ifdef SOL_HAVE_DNNL
#include <oneapi/dnnl/dnnl_version.h>

#include "sol/backends/dnnl/dnnl_convolution.h"
#include "sol/backends/dnnl/dnnl_convolution_backward.h"
#include "sol/backends/dnnl/dnnl_linear.h"
#endif
#include "sol/error.h"
#include "sol/jit/compiler.h"

namespace sol::devices {
namespace {

constexpr std::size_t kAlignment = 64;  // a cache line, and an AVX-512 register

codegen::cpu::CpuTarget detect_target() {
    codegen::cpu::CpuTarget target;
#if defined(__x86_64__)
    __builtin_cpu_init();
    target.vector_width = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") ? 8 : 4;
#else
    target.vector_width = 4;  // NEON
#endif
    target.compile_units = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return target;
}

class HostDevice final : public Device {
public:
    explicit HostDevice(int index) : index_(index), target_(detect_target()) {
        if (index != 0)
            throw DeviceError("the host CPU is device index 0; index " + std::to_string(index) + " does not exist");
    }

    std::string name() const override { return host_name(); }
    int index() const override { return index_; }

    // Large blocks are mapped (support/page_memory.h: freed, they leave no
    // resident heap behind); the rest comes from malloc.
    void* allocate(std::size_t bytes) override {
        if (bytes >= kPageMemoryThreshold) {
            void* memory = nullptr;
            try {
                memory = map_pages(bytes);
            } catch (const std::bad_alloc&) {
                throw DeviceError("out of host memory allocating " + std::to_string(bytes) + " bytes");
            }
            std::lock_guard<std::mutex> lock(mapped_mutex_);
            mapped_bytes_[memory] = bytes;
            return memory;
        }
        const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
        void* memory = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
        if (memory == nullptr) throw DeviceError("out of host memory allocating " + std::to_string(bytes) + " bytes");
        return memory;
    }
    void release(void* memory) override {
        {
            std::lock_guard<std::mutex> lock(mapped_mutex_);
            auto mapped = mapped_bytes_.find(memory);
            if (mapped != mapped_bytes_.end()) {
                unmap_pages(memory, mapped->second);
                mapped_bytes_.erase(mapped);
                return;
            }
        }
        std::free(memory);
    }
    void copy_to_host(void* destination, const void* source, std::size_t bytes) override {
        std::memcpy(destination, source, bytes);
    }
    void copy_from_host(void* destination, const void* source, std::size_t bytes) override {
        std::memcpy(destination, source, bytes);
    }
    void launch(KernelFunction kernel, void* const* args) override { kernel(args); }
    void synchronize() override {}  // host kernels return when done

    std::vector<std::string> backends() const override {
        std::vector<std::string> names;
        if (dnn_enabled()) names.push_back("dnn (oneDNN " + dnn_version() + ": convolutions, inner products)");
        names.push_back("dfp (generated C++, OpenMP)");
        return names;
    }

    // Image tensors between the kernels that handle them are laid out for
    // vector code: channels last (NHWC), for which oneDNN has its brgemm
    // convolutions on AVX-512 (any channel count, no padding), or channel
    // blocks of a register (NCHW16c, NCHW8c). Neither wins everywhere: on
    // AVX-512 every zoo network took 1-19% less time in NHWC at batch 1, but
    // at batch 8 resnet50 and squeezenet1_1 took 6-8% less blocked (oneDNN's
    // NHWC 1x1 convolutions with a residual sum), so both are offered and
    // compiling keeps the faster per network. SOL_LAYOUT=channels_last,
    // blocked or plain (everything row-major, for comparisons) forces one.
    std::vector<std::string> layouts() const override {
        const char* forced = std::getenv("SOL_LAYOUT");
        if (forced != nullptr && *forced != '\0') return {forced};
        if (target_.vector_width >= 16) return {"channels_last", "blocked"};
        if (target_.vector_width >= 8) return {"blocked", "channels_last"};
        return {"blocked"};  // NEON's 4 lanes: no blocks of 8 or more, so row-major
    }

    void lower(ir::Graph& graph, const std::string& requested) override {
        const std::string layout = requested.empty() ? layouts().front() : requested;
        if (layout != "channels_last" && layout != "blocked" && layout != "plain")
            throw DeviceError("layout '" + layout + "' (from SOL_LAYOUT?) is not one of channels_last, blocked, plain");
        std::vector<int> blocks;
        if (layout == "channels_last")
            blocks.push_back(passes::kChannelsLast);
        else if (layout == "blocked")
            for (int block = target_.vector_width; block >= 8; block /= 2) blocks.push_back(block);
        // Each cluster's backend, chosen once with every tensor row-major.
        std::map<std::vector<int>, std::string> backend_of;
        auto backend = [&](const ir::Graph& g, const std::vector<int>& cluster) -> const std::string& {
            auto found = backend_of.find(cluster);
            if (found == backend_of.end()) found = backend_of.emplace(cluster, select_backend(g, cluster)).first;
            return found->second;
        };
        auto accepts = [&](const ir::Graph& g, const std::vector<int>& cluster, int tensor) {
#ifdef SOL_HAVE_DNNL
            // An inner product flattens its input to rows: row-major only.
            if (backend(g, cluster) == "dnn")
                return g.nodes()[cluster.front()].op == ir::Op::Conv2d &&
                       backends::dnnl::handles_channel_blocked(g, cluster, tensor);
#endif
            return codegen::cpu::handles_channel_blocked(g, cluster, tensor);
        };
        // oneDNN runs some mixes of row-major and blocked operands only by its
        // slow reference code: such a convolution gets row-major operands
        // (then generate() sees the same choice as made here).
        auto check = [&](const ir::Graph& g, const std::vector<int>& cluster) {
            return backend(g, cluster) != "dnn" || select_backend(g, cluster) == "dnn";
        };
        const int blocked = passes::assign_layouts(graph, blocks, accepts, check);
        log::debug(std::to_string(blocked) + " tensors channel-blocked");
        // After the layouts: the merged kernel reads the producer's operands
        // as they are laid out. SOL_DEPTH_FIRST=off keeps every kernel's
        // result in memory, for comparisons.
        const char* depth_first = std::getenv("SOL_DEPTH_FIRST");
        if (depth_first != nullptr && std::string(depth_first) == "off") return;
#ifdef SOL_HAVE_DNNL
        if (dnn_enabled()) {
            const int pairs = passes::merge_depthwise_into_pointwise(
                graph, [](const ir::Graph& g, const std::vector<int>& merged) {
                    std::string reason;
                    const bool fused = backends::dnnl::supports_fused_depthwise(g, merged, reason);
                    if (!fused && log::enabled(log::Level::Debug))
                        log::debug("conv2d at " + g.nodes()[merged.front()].origin +
                                   " does not compute the depthwise conv2d after it: " + reason);
                    return fused;
                });
            log::debug(std::to_string(pairs) + " depthwise convolutions computed inside the 1x1 convolution before them");
        }
#endif
        const int merged = passes::fuse_depth_first(
            graph, [&](const ir::Graph& g, const std::vector<int>& cluster) { return backend(g, cluster).empty(); });
        log::debug(std::to_string(merged) + " kernels computed inside their reader's kernel (depth-first)");
    }

    codegen::GeneratedModule generate(const ir::Graph& graph) override {
        codegen::GeneratedModule module = codegen::cpu::generate_module(
            graph, target_, [this](const ir::Graph& g, const std::vector<int>& cluster) { return select_backend(g, cluster); });
#ifdef SOL_HAVE_DNNL
        for (codegen::KernelCall& call : module.calls)
            if (call.backend == "dnn")
                call.may_overwrite = graph.nodes()[call.nodes.front()].op == ir::Op::Linear
                                         ? backends::dnnl::linear_in_place_input(graph, call.nodes)
                                         : backends::dnnl::in_place_input(graph, call.nodes);
#endif
        return module;
    }

    std::unique_ptr<backends::LibraryKernel> instantiate(const ir::Graph& graph,
                                                         const codegen::KernelCall& call) override {
        if (call.backend == "custom") return backends::custom::make_custom_call(graph, call.nodes.front(), call.arguments, name());
#ifdef SOL_HAVE_DNNL
        if (call.backend == "dnn") {
            const ir::Op anchor = graph.nodes()[call.nodes.front()].op;
            if (anchor == ir::Op::Conv2d) return backends::dnnl::make_convolution(graph, call.nodes, call.arguments);
            if (anchor == ir::Op::Linear) return backends::dnnl::make_linear(graph, call.nodes, call.arguments);
            if (ir::is_convolution_gradient(anchor))
                return backends::dnnl::make_convolution_backward(graph, call.nodes, call.arguments);
            throw DeviceError("internal: the dnn backend has no kernel for '" + std::string(ir::name(anchor)) + "'");
        }
#endif
        throw DeviceError("backend '" + call.backend + "' is not available on " + name());
    }

    std::shared_ptr<jit::SharedLibrary> build(const codegen::GeneratedModule& module) override {
        const auto path = jit::build_shared_library(
            compiler(), module.source, std::to_string(module.unique_kernels) + " kernels for " + name(), module.units);
        return std::make_shared<jit::SharedLibrary>(path);
    }

    std::string compiler_description() const override {
        const jit::Compiler& c = compiler();
        return c.executable + " (" + c.version + ") " + c.flag_text();
    }

    static std::string host_name() {
#if defined(__aarch64__)
        return "arm64";
#else
        return "x86";
#endif
    }

private:
    // SOL_BACKENDS=dfp keeps everything in generated code (for comparisons
    // and for tracking down a library's fault); the default allows all.
    static bool dnn_enabled() {
#ifdef SOL_HAVE_DNNL
        const char* allowed = std::getenv("SOL_BACKENDS");
        return allowed == nullptr || std::string(allowed).find("dnn") != std::string::npos;
#else
        return false;
#endif
    }

    static std::string dnn_version() {
#ifdef SOL_HAVE_DNNL
        return std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) + "." +
               std::to_string(DNNL_VERSION_PATCH);
#else
        return "";
#endif
    }

    // A custom layer's own library; oneDNN for the convolutions and linear
    // layers it supports (with their fused chain); generated code for
    // everything else. Every "not chosen" says why.
    std::string select_backend(const ir::Graph& graph, const std::vector<int>& cluster) const {
        if (ir::is_custom(graph.nodes()[cluster.front()].op)) return "custom";  // the user's own kernel
#ifdef SOL_HAVE_DNNL
        const ir::Node& anchor = graph.nodes()[cluster.front()];
        const bool gradient = ir::is_convolution_gradient(anchor.op);
        if (!dnn_enabled() || (anchor.op != ir::Op::Conv2d && anchor.op != ir::Op::Linear && !gradient)) return "";
        std::string reason;
        const bool supported = anchor.op == ir::Op::Conv2d ? backends::dnnl::supports_convolution(graph, cluster, reason)
                               : gradient ? backends::dnnl::supports_convolution_backward(graph, cluster, reason)
                                          : backends::dnnl::supports_linear(graph, cluster, reason);
        if (supported) return "dnn";
        if (log::enabled(log::Level::Debug))
            log::debug("dnn not chosen for " + std::string(ir::name(anchor.op)) + " at " + anchor.origin + ": " +
                       reason + "; using dfp");
#else
        (void)graph;
        (void)cluster;
#endif
        return "";
    }

    // Found on first use, so merely listing devices needs no compiler.
    const jit::Compiler& compiler() const {
        std::call_once(compiler_once_, [this] { compiler_ = jit::find_host_compiler(); });
        return compiler_;
    }

    int index_;
    codegen::cpu::CpuTarget target_;
    mutable std::once_flag compiler_once_;
    mutable jit::Compiler compiler_;
    std::mutex mapped_mutex_;
    std::unordered_map<void*, std::size_t> mapped_bytes_;  // allocate()'s mapped blocks and their sizes
};

}  // namespace

void register_host_device() {
    register_device(HostDevice::host_name(), [](int index) { return std::make_unique<HostDevice>(index); });
}

}  // namespace sol::devices
