// The device plug-in interface. A device brings memory management, copies,
// kernel launch, a code generator and a compiler driver; nothing else in SOL
// needs to know which device it is, and no framework needs to know the
// device exists. The host CPU is the first implementation (devices/host).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sol/backends/library_kernel.h"
#include "sol/codegen/kernel.h"
#include "sol/ir/graph.h"
#include "sol/jit/shared_library.h"

namespace sol::devices {

// Every generated kernel has this signature: pointers to its tensors.
using KernelFunction = void (*)(void* const* args);

class Device {
public:
    virtual ~Device() = default;

    virtual std::string name() const = 0;  // "x86", later "nvidia", "arm64", ...
    virtual int index() const = 0;

    virtual void* allocate(std::size_t bytes) = 0;
    virtual void release(void* memory) = 0;
    virtual void copy_to_host(void* host_destination, const void* device_source, std::size_t bytes) = 0;
    virtual void copy_from_host(void* device_destination, const void* host_source, std::size_t bytes) = 0;
    virtual void launch(KernelFunction kernel, void* const* args) = 0;
    virtual void synchronize() = 0;

    // Backends this device offers, in order of preference ("dfp", later "dnn").
    virtual std::vector<std::string> backends() const = 0;
    // The ways this device can lay out the tensors its kernels share, its
    // own choice first (the host: channels last or channel blocks). With
    // two or more, compiling times the network in each and keeps the
    // fastest (runtime/choose_layout.h). Empty: one way only.
    virtual std::vector<std::string> layouts() const { return {}; }
    // Device-specific lowering of a fused graph, before `generate`: the host
    // gives the tensors its kernels share `layout` (one of layouts(); empty:
    // the device's own choice). Runs on the compiled model's own copy of
    // the graph.
    virtual void lower(ir::Graph& graph, const std::string& layout) { (void)graph, (void)layout; }
    // Source for every kernel of a fused (and lowered) graph.
    virtual codegen::GeneratedModule generate(const ir::Graph& graph) = 0;
    // Compiles a generated module (through the cache) and loads it.
    virtual std::shared_ptr<jit::SharedLibrary> build(const codegen::GeneratedModule& module) = 0;
    // Sets up a library call (call.backend other than "dfp") once, at load
    // time. Throws sol::Error for a backend the device does not have.
    virtual std::unique_ptr<backends::LibraryKernel> instantiate(const ir::Graph& graph,
                                                                 const codegen::KernelCall& call) = 0;
    // Compiler and flags, for `python -m sol` and cache keys.
    virtual std::string compiler_description() const = 0;
};

using DeviceFactory = std::function<std::unique_ptr<Device>(int index)>;

// Devices register themselves by name; `find_device` makes one instance per
// (name, index) and keeps it. Throws sol::DeviceError naming the device and
// the registered ones.
void register_device(const std::string& name, DeviceFactory factory);
std::vector<std::string> device_names();
Device& find_device(const std::string& name, int index);

}  // namespace sol::devices
