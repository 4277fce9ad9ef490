#include "sol/ir/attributes.h"

#include <cmath>
#include <sstream>

#include "sol/error.h"

namespace sol::ir {
namespace {

[[noreturn]] void wrong_kind(const std::string& key, const char* wanted) {
    throw ShapeError("attribute '" + key + "' must be " + wanted);
}

}  // namespace

std::int64_t Attributes::get_int(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw ShapeError("missing attribute '" + key + "'");
    if (auto value = std::get_if<std::int64_t>(&it->second)) return *value;
    if (auto value = std::get_if<double>(&it->second); value && std::floor(*value) == *value)
        return static_cast<std::int64_t>(*value);
    wrong_kind(key, "an integer");
}

std::int64_t Attributes::get_int(const std::string& key, std::int64_t fallback) const {
    return has(key) ? get_int(key) : fallback;
}

double Attributes::get_float(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw ShapeError("missing attribute '" + key + "'");
    if (auto value = std::get_if<double>(&it->second)) return *value;
    if (auto value = std::get_if<std::int64_t>(&it->second)) return static_cast<double>(*value);
    wrong_kind(key, "a number");
}

double Attributes::get_float(const std::string& key, double fallback) const {
    return has(key) ? get_float(key) : fallback;
}

std::vector<std::int64_t> Attributes::get_ints(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw ShapeError("missing attribute '" + key + "'");
    if (auto value = std::get_if<std::vector<std::int64_t>>(&it->second)) return *value;
    if (auto value = std::get_if<std::int64_t>(&it->second)) return {*value};
    wrong_kind(key, "a list of integers");
}

std::vector<std::int64_t> Attributes::get_ints(const std::string& key,
                                               std::vector<std::int64_t> fallback) const {
    return has(key) ? get_ints(key) : fallback;
}

std::string Attributes::get_string(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw ShapeError("missing attribute '" + key + "'");
    if (auto value = std::get_if<std::string>(&it->second)) return *value;
    wrong_kind(key, "a string");
}

std::string to_string(const AttributeValue& value) {
    std::ostringstream out;
    out.precision(9);
    std::visit(
        [&out](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, double>) {
                out << v;
            } else if constexpr (std::is_same_v<T, std::string>) {
                out << '"' << v << '"';
            } else {
                out << '[';
                for (std::size_t i = 0; i < v.size(); ++i) out << (i ? "," : "") << v[i];
                out << ']';
            }
        },
        value);
    return out.str();
}

}  // namespace sol::ir
