// The C API of a library written by sol.deploy. This file is a template:
// deploy/write_library compiles it into every deployed library with
// SOL_DEPLOY_FUNC set to the user's function name, next to the generated
// model data (the plan and the weights) and the model's kernels. SOL's own
// build compiles it on its own as well, so a typo fails there.
//
//   void NAME_init(const int deviceIdx);   once, before the first call
//   int  NAME_seed(const int seed);        seeds randomness; returns the previous seed
//   void NAME(void* ctx, const float* input, float** output);
//
// Errors (a wrong device index, a library whose plan does not fit the CPU)
// are printed with the reason and abort the program: the C API returns
// nothing a caller could check, and running on would give wrong numbers.
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>

#include "sol/deploy/deployed_model.h"

#ifndef SOL_DEPLOY_FUNC
#define SOL_DEPLOY_FUNC sol_deployed  // the name SOL's build checks this template with
#endif
#define SOL_PASTE_(a, b) a##b
#define SOL_PASTE(a, b) SOL_PASTE_(a, b)
#define SOL_API(suffix) SOL_PASTE(SOL_DEPLOY_FUNC, suffix)
#define SOL_STRING_(x) #x
#define SOL_STRING(x) SOL_STRING_(x)
#define SOL_EXPORT extern "C" __attribute__((visibility("default")))

// Generated beside this file (model_data.cpp), hidden inside the library.
extern "C" {
__attribute__((visibility("hidden"))) extern const char sol_deploy_plan[];
__attribute__((visibility("hidden"))) extern const unsigned char sol_deploy_weights[];
__attribute__((visibility("hidden"))) extern const unsigned char sol_deploy_weights_end[];
}

namespace {

std::mutex init_mutex;
// Set once and never destroyed: at exit, the runtime's statics (the device
// registry its buffers belong to) may already be gone, and the process
// returns the memory anyway.
std::atomic<sol::deploy::DeployedModel*> model{nullptr};
int current_seed = 0;

[[noreturn]] void fail(const char* what, const char* reason) {
    std::fprintf(stderr, "%s: %s: %s\n", SOL_STRING(SOL_DEPLOY_FUNC), what, reason);
    std::abort();
}

void initialize(int device_index) {
    std::lock_guard<std::mutex> lock(init_mutex);
    if (model.load(std::memory_order_acquire) != nullptr) return;
    try {
        const auto bytes = static_cast<std::size_t>(sol_deploy_weights_end - sol_deploy_weights);
        model.store(new sol::deploy::DeployedModel(sol_deploy_plan, sol_deploy_weights, bytes, sol_deploy_plan,
                                                   device_index),
                    std::memory_order_release);
    } catch (const std::exception& error) {
        fail("initialization failed", error.what());
    }
}

}  // namespace

SOL_EXPORT void SOL_API(_init)(const int deviceIdx) { initialize(deviceIdx); }

SOL_EXPORT int SOL_API(_seed)(const int seed) {
    // No op of an inference network draws random numbers today; the seed is
    // kept so a network that does will use it.
    std::lock_guard<std::mutex> lock(init_mutex);
    const int previous = current_seed;
    current_seed = seed;
    return previous;
}

SOL_EXPORT void SOL_DEPLOY_FUNC(void* ctx, const float* input, float** output) {
    if (ctx != nullptr) fail("call failed", "ctx must be NULL (the default context); no other context exists yet");
    if (input == nullptr || output == nullptr) fail("call failed", "input and output must not be NULL");
    sol::deploy::DeployedModel* ready = model.load(std::memory_order_acquire);
    if (ready == nullptr) {  // NAME_init was not called: the default device
        initialize(0);
        ready = model.load(std::memory_order_acquire);
    }
    try {
        ready->run(input, output);
    } catch (const std::exception& error) {
        fail("call failed", error.what());
    }
}
