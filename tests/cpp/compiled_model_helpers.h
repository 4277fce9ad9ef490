// Compiling graphs through the real host compiler and running them on named
// host buffers, for the tests that check generated code numerically.
#pragma once

#include <omp.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "sol/devices/device.h"
#include "sol/passes/pipeline.h"
#include "sol/runtime/compiled_model.h"
#include "test_helpers.h"

namespace soltest {

using Tensors = std::map<std::string, std::vector<float>>;

// Runs the pass pipeline and compiles for the host CPU.
// Autotuning is off unless asked for: tests that count library calls need
// the device's deterministic choice, not one timed on a busy machine.
inline std::unique_ptr<sol::runtime::CompiledModel> compile_for_host(
    ir::Graph& graph, const sol::runtime::CompileOptions& options = {.autotuning = false, .threads = 0}) {
    sol::passes::run_pipeline(graph);
    return std::make_unique<sol::runtime::CompiledModel>(graph, sol::devices::find_device("x86", 0), options);
}

// Compiles the graph `build()` returns with autotuning, writes generated code
// as every call's choice into the tuning cache (calls without a generated
// alternative keep the library) and compiles it again: the model that runs
// generated code wherever it can replace the library. The caller sets a
// fresh cache (FreshCache).
template <typename Build>
std::unique_ptr<sol::runtime::CompiledModel> compile_preferring_generated(Build build) {
    ir::Graph measured_graph = build();
    auto measured = compile_for_host(measured_graph, {.autotuning = true, .threads = 0});
    {
        std::ofstream tuning(std::filesystem::path(measured->library_path())
                                 .replace_extension(".tuning-" + std::to_string(omp_get_max_threads()) + "t"));
        for (std::size_t k = 0; k < measured->kernel_calls(); ++k) tuning << k << " dfp\n";
    }
    ir::Graph graph = build();
    auto model = compile_for_host(graph, {.autotuning = true, .threads = 0});
    EXPECT_EQ(model->measured_calls(), 0) << "the choices came from the cache";
    return model;
}

// Checks (SOL_PROFILE set) that the step computing the node named `origin`
// ran as generated code with the node named `chained` in its kernel.
inline void expect_generated_step(const sol::runtime::CompiledModel& model, const std::string& origin,
                                  const std::string& chained) {
    bool found = false;
    for (const auto& [description, seconds] : model.profile())
        if (description.find("# " + origin) != std::string::npos) {
            found = true;
            EXPECT_NE(description.rfind("[dnn]", 0), 0u) << "generated code, not the library: " << description;
            EXPECT_NE(description.find(chained), std::string::npos) << "the chain is in the kernel: " << description;
        }
    EXPECT_TRUE(found) << "no step computes " << origin;
}

// The generated module's source (kept beside the compiled library).
inline std::string module_source(const sol::runtime::CompiledModel& model) {
    std::ifstream source(std::filesystem::path(model.library_path()).replace_extension(".cpp"));
    std::stringstream text;
    text << source.rdbuf();
    return text.str();
}

// Whether a channel-blocked kernel in `source` stores its registers lane by
// lane through the scalar chain (an op without a vector form, such as sigmoid)
// rather than a register at a time.
inline bool stores_lane_by_lane(const std::string& source) {
    return source.find("sol_vstore(lane, v);") != std::string::npos;
}

// Runs `model` on buffers looked up by name; outputs start as NaN so an
// output the model forgets to write is caught.
inline std::vector<std::vector<float>> run_model(sol::runtime::CompiledModel& model, Tensors& inputs,
                                                 Tensors& parameters, bool parameters_changed) {
    std::vector<void*> in, params, out;
    for (const auto& info : model.inputs()) {
        std::vector<float>& data = inputs.at(info.name);
        EXPECT_EQ(data.size(), static_cast<std::size_t>(ir::element_count(info.shape))) << info.name;
        in.push_back(data.data());
    }
    for (const auto& info : model.parameters()) {
        std::vector<float>& data = parameters.at(info.name);
        EXPECT_EQ(data.size(), static_cast<std::size_t>(ir::element_count(info.shape))) << info.name;
        params.push_back(data.data());
    }
    std::vector<std::vector<float>> results;
    for (const auto& info : model.outputs())
        results.emplace_back(ir::element_count(info.shape), std::numeric_limits<float>::quiet_NaN());
    for (auto& result : results) out.push_back(result.data());
    model.run(in, params, out, parameters_changed);
    return results;
}

}  // namespace soltest
