// What SolModule checks before every call to notice changed parameters: the
// identity, data pointer and in-place version of each tensor, compared with
// the last call's. Read through the direct tensor reader where one is
// installed (tensor_reader.h), else through the Python attributes PyTorch
// tensors have (`data_ptr()`, `_version`); both read the same values.
//
// In C++ because the check runs on every call, right after the kernels have
// evicted the tensor objects from the caches. Right after a call, for the 262
// parameter tensors of mnasnet1_0 (a 1.8 ms batch-1 call) the attributes take
// 60-70 us (cache misses inside the tensors' getters), the direct reader
// 17-23 us; for googlenet's 287, 130-145 us against 42. The Python list of
// tuples the attribute path replaced took about 67 us more, allocating per
// call and keeping its last state in hundreds of objects.
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
