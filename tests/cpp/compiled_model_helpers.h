// Compiling graphs through the real host compiler and running them on named
// host buffers, for the tests that check generated code numerically.
#pragma once

#include <map>
#include <memory>
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
