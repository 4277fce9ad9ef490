#include "sol/ir/dtype.h"

#include <cstdint>

#include "sol/error.h"

namespace sol::ir {

std::size_t byte_size(DType dtype) {
    switch (dtype) {
        case DType::Float32: return sizeof(float);
        case DType::Int64: return sizeof(std::int64_t);
        case DType::Bool: return sizeof(bool);
    }
    return 0;
}

std::string_view name(DType dtype) {
    switch (dtype) {
        case DType::Float32: return "float32";
        case DType::Int64: return "int64";
        case DType::Bool: return "bool";
    }
    return "?";
}

std::string_view short_name(DType dtype) {
    switch (dtype) {
        case DType::Float32: return "f32";
        case DType::Int64: return "i64";
        case DType::Bool: return "b8";
    }
    return "?";
}

std::string_view c_type(DType dtype) {
    switch (dtype) {
        case DType::Float32: return "float";
        case DType::Int64: return "int64_t";
        case DType::Bool: return "bool";
    }
    return "?";
}

DType parse_dtype(std::string_view text) {
    if (text == "float32" || text == "torch.float32") return DType::Float32;
    if (text == "int64" || text == "torch.int64") return DType::Int64;
    if (text == "bool" || text == "torch.bool") return DType::Bool;
    throw Error("unsupported dtype '" + std::string(text) +
                "': SOL handles float32, int64 and bool tensors");
}

}  // namespace sol::ir
