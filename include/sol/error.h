// Exceptions thrown by the core. Each one carries a message written for the
// user: it names the culprit (op, origin in the model, file, shape).
#pragma once

#include <stdexcept>
#include <string>

namespace sol {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Inputs of an op do not fit together (shapes, dtypes, attributes).
struct ShapeError : Error {
    using Error::Error;
};

// The device compiler is missing or rejected generated code.
struct CompileError : Error {
    using Error::Error;
};

// A device is unknown, unavailable or misused.
struct DeviceError : Error {
    using Error::Error;
};

}  // namespace sol
