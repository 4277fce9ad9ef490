// Element types of tensors.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sol::ir {

enum class DType { Float32, Int64, Bool };

std::size_t byte_size(DType dtype);
std::string_view name(DType dtype);       // "float32", "int64", "bool"
std::string_view short_name(DType dtype); // "f32", "i64", "b8" (printer)
std::string_view c_type(DType dtype);     // "float", "int64_t", "bool" (codegen)
DType parse_dtype(std::string_view text); // throws sol::Error naming the text

}  // namespace sol::ir
