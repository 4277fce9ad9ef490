// The runtime inside a library written by deploy/write_library: rebuilds
// the compiled model from the plan the library carries and runs it on the
// weights that travel with it. The library's C API (deploy/templates/
// c_api.cpp) is its only user.
//
// This header is compiled into every deployed library, so it includes
// standard headers only.
#pragma once

#include <cstddef>
#include <memory>

namespace sol::deploy {

class DeployedModel {
public:
    // `plan`: deploy::write_plan's text; `weights`: the parameters' bytes at
    // deploy::weight_offsets; `address_in_library`: any symbol of the
    // deployed library, whose own kernels the plan's calls name. Throws
    // sol::Error (a std::exception) naming what does not fit.
    DeployedModel(const char* plan, const unsigned char* weights, std::size_t weight_bytes,
                  const void* address_in_library, int device_index);
    ~DeployedModel();
    DeployedModel(const DeployedModel&) = delete;
    DeployedModel& operator=(const DeployedModel&) = delete;

    // One input, the outputs into caller memory of the sizes the library's
    // header states. Safe to call from several threads at once.
    void run(const float* input, float* const* outputs);

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace sol::deploy
