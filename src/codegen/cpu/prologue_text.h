// The text of kernel_prologue.h, embedded by the build (see CMakeLists.txt).
#pragma once

namespace sol::codegen::cpu {

extern const char* const kKernelPrologue;

}  // namespace sol::codegen::cpu
