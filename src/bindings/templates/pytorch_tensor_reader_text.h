// The text of templates/pytorch_tensor_reader.cpp, embedded by the build (see CMakeLists.txt).
#pragma once

namespace sol::bindings {

extern const char* const kPyTorchTensorReader;

}  // namespace sol::bindings
