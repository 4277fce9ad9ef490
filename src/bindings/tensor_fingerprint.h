// What SolModule checks before every call to notice changed parameters: the
// identity, data pointer and in-place version of each tensor, compared with
// the last call's. Read through the Python attributes PyTorch tensors have
// (`data_ptr()`, `_version`), without framework headers.
//
// Here rather than in Python because the check runs on every call and the
// kernels have just evicted the tensor objects from the caches: building and
// comparing a Python tuple per tensor cost 150-270 us per call for the
// 262 parameter tensors of mnasnet1_0 or mobilenet_v2 (about a tenth of a
// batch-1 call on 2 cores); a C++ loop allocates nothing and keeps the last
// state in one array.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <vector>

namespace sol::bindings {

class TensorFingerprint {
public:
    // Whether any tensor of `tensors` (a list) differs from the last call,
    // the first call, or any after forget(); remembers the new state. A
    // tensor without a readable version (an inference-mode tensor) counts as
    // changed on every call.
    bool changed(const nanobind::list& tensors);
    void forget() { known_ = false; }

private:
    std::vector<std::intptr_t> state_;  // (identity, data pointer, version) per tensor
    bool known_ = false;                // state_ is the last call's
};

}  // namespace sol::bindings
