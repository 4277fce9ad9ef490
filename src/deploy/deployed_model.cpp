#include "sol/deploy/deployed_model.h"

#include <dlfcn.h>

#include <filesystem>
#include <string>
#include <vector>

#include "sol/backends/custom/custom_call.h"
#include "sol/deploy/deployment_plan.h"
#include "sol/devices/device.h"
#include "sol/error.h"
#include "sol/jit/shared_library.h"
#include "sol/runtime/compiled_model.h"

namespace sol::deploy {

struct DeployedModel::State {
    std::unique_ptr<runtime::CompiledModel> model;
    std::vector<void*> parameters;  // into the library's read-only weights
};

namespace {

std::string library_containing(const void* address) {
    Dl_info info{};
    if (dladdr(address, &info) == 0 || info.dli_fname == nullptr)
        throw Error("a deployed SOL library could not find its own file (dladdr failed)");
    return info.dli_fname;
}

}  // namespace

DeployedModel::DeployedModel(const char* plan_text, const unsigned char* weights, std::size_t weight_bytes,
                             const void* address_in_library, int device_index)
    : state_(std::make_unique<State>()) {
    DeploymentPlan plan = read_plan(plan_text);
    if (const auto missing = missing_cpu_features(plan.cpu_features); !missing.empty()) {
        std::string names;
        for (const std::string& feature : missing) names += (names.empty() ? "" : ", ") + feature;
        throw Error("this library's kernels were compiled for a CPU with " + names +
                    ", which this CPU lacks; deploy the network again on (or for) a machine like this one");
    }
    const std::vector<std::size_t> offsets = weight_offsets(plan.graph);
    if (offsets.back() != weight_bytes)
        throw Error("the weights carried by this library have " + std::to_string(weight_bytes) +
                    " bytes; its plan expects " + std::to_string(offsets.back()));
    // The library's own kernels: dlopen of the file already loaded gives its handle.
    const std::filesystem::path self_path = library_containing(address_in_library);
    auto self = std::make_shared<jit::SharedLibrary>(self_path);
    // Custom layers' libraries were deployed beside this one (write_library).
    const std::string key = plan.device + backends::custom::kLibrarySuffix;
    for (ir::Node& node : plan.graph.nodes())
        if (ir::is_custom(node.op) && node.attrs.has(key))
            node.attrs.set(key, (self_path.parent_path() / node.attrs.get_string(key)).string());
    devices::Device& device = devices::find_device(plan.device, device_index);
    state_->model = std::make_unique<runtime::CompiledModel>(plan.graph, plan.calls, std::move(self), device);
    if (state_->model->inputs().size() != 1)
        throw Error("a deployed library takes one input; its plan has " +
                    std::to_string(state_->model->inputs().size()));
    for (std::size_t k = 0; k + 1 < offsets.size(); ++k)
        state_->parameters.push_back(const_cast<unsigned char*>(weights + offsets[k]));  // kernels only read them
}

DeployedModel::~DeployedModel() = default;

void DeployedModel::run(const float* input, float* const* outputs) {
    const std::vector<void*> inputs{const_cast<float*>(input)};
    std::vector<void*> results(outputs, outputs + state_->model->outputs().size());
    // The parameter stage (folded weights, oneDNN's reorders) runs on the
    // first call only: a deployed network's weights are constants.
    state_->model->run(inputs, state_->parameters, results, false);
}

}  // namespace sol::deploy
